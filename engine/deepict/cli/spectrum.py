"""``deepict spectrum`` and ``deepict equalize``: measure and match radial amplitude spectra.

See :mod:`deepict.spectrum` for the definitions and the algorithm.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from deepict.errors import InputFileError, ParameterError
from deepict.io import read_volume, volume_writer
from deepict.io.outputs import claimed_outputs
from deepict.spectrum import (DEFAULT_LOWPASS_WIDTH, default_workers, equalize_volume, is_volume_path, load_reference,
                        radial_spectrum, write_spectrum)

_FORMATTER = argparse.RawDescriptionHelpFormatter

SPECTRUM_DESCRIPTION = """\
Measure the radial amplitude spectrum of a tomogram and write it as a TSV table.

The tomogram is normalised to mean 0 and standard deviation 1; the spectrum is the mean Fourier
amplitude |FFT| / sqrt(N) in shells of physical frequency (1/Å) of width 1 / (longest box side ×
voxel size), DC excluded. Shells reach the corner of the Fourier box. The table starts with
'# voxel_size_angstrom: X' and '# box_shape_zyx: Z Y X' comments, then the header
'frequency_per_angstrom<TAB>amplitude' and one row per shell. Use it as --reference of
'deepict equalize' (e.g. measure one well-behaved tomogram once and equalize all others to it).
"""

SPECTRUM_EPILOG = """\
example:
  deepict spectrum --tomogram TS_001.mrc --out TS_001_spectrum.tsv
"""

EQUALIZE_DESCRIPTION = """\
Equalize ("spectrum-match") a tomogram: filter it so that its radial amplitude spectrum matches a
reference, as DeePiCt's pretrained networks expect.

The Fourier transform of the tomogram is multiplied by the radial gain
    g(f) = reference_amplitude(f) / tomogram_amplitude(f) × low-pass(f),
both spectra being interpolated in physical frequency f (1/Å), so a reference measured at another
voxel size or on another box size is matched correctly. Outside the frequency range the reference
covers, the gain is held at its value at the nearest end of that range. The optional low-pass is a
smooth sigmoid (no hard cut). The result is written as float32 MRC normalised to mean 0 and standard
deviation 1, with the tomogram's voxel size. Memory: about the float32 size of the tomogram.

The reference is one of:
  * an MRC tomogram (.mrc, .rec, .map, .st, .ali, optionally .gz): its spectrum is measured;
  * a TSV from 'deepict spectrum' (frequencies in 1/Å);
  * a TSV from DeePiCt's extract_spectrum.py (header 'freq<TAB>intensity', shells in index units):
    give --reference-voxel-size and --reference-box of the tomogram it was extracted from, e.g. the
    authors' spectrum_TS_001.tsv of the pretrained models (bin-4 data of 3.37 Å pixels: 13.48 Å).
"""

EQUALIZE_EPILOG = """\
examples:
  deepict equalize --tomogram TS_07.mrc --reference TS_001.mrc --out TS_07_eq.mrc --lowpass-angstrom 40
  deepict equalize --tomogram TS_07.mrc --reference spectrum_TS_001.tsv \\
      --reference-voxel-size 13.48 --reference-box 928 928 464 --out TS_07_eq.mrc
"""


def register(subparsers) -> None:
    spectrum = subparsers.add_parser(
        "spectrum", help="measure a tomogram's radial amplitude spectrum (TSV)",
        description=SPECTRUM_DESCRIPTION, epilog=SPECTRUM_EPILOG, formatter_class=_FORMATTER)
    spectrum.add_argument("--tomogram", required=True, metavar="T.mrc", help="tomogram (MRC) to measure")
    spectrum.add_argument("--out", required=True, metavar="SPEC.tsv", help="spectrum table to write (atomically)")
    spectrum.add_argument("--voxel-size", type=float, metavar="Å",
                          help="voxel size in Å (default: from the MRC header; required if the header has none)")
    spectrum.add_argument("--bins", type=int, metavar="N",
                          help="number of frequency shells up to the corner of the Fourier box (default: shells "
                               "1 / (longest side × voxel size) wide)")
    _add_threads(spectrum)
    spectrum.set_defaults(handler=run_spectrum)

    equalize = subparsers.add_parser(
        "equalize", help="match a tomogram's amplitude spectrum to a reference (spectrum equalization)",
        description=EQUALIZE_DESCRIPTION, epilog=EQUALIZE_EPILOG, formatter_class=_FORMATTER)
    equalize.add_argument("--tomogram", required=True, metavar="T.mrc", help="tomogram (MRC) to equalize")
    equalize.add_argument("--reference", required=True, metavar="R.mrc|SPEC.tsv",
                          help="reference tomogram or spectrum table (see above)")
    equalize.add_argument("--out", required=True, metavar="E.mrc",
                          help="equalized tomogram to write (float32 MRC, mean 0, std 1; written atomically)")
    equalize.add_argument("--voxel-size", type=float, metavar="Å",
                          help="voxel size of --tomogram in Å (default: from its MRC header)")
    equalize.add_argument("--lowpass-angstrom", type=float, metavar="Å",
                          help="also low-pass the result: gain 0.5 at this resolution in Å (sigmoid). Must be at "
                               "least 2 × the voxel size (Nyquist). Default: no low-pass")
    equalize.add_argument("--lowpass-width", type=float, default=DEFAULT_LOWPASS_WIDTH, metavar="FRACTION",
                          help="10–90%% transition width of the low-pass as a fraction of its cut-off frequency, "
                               "in (0, 1] (default %(default)s: gain 0.9 at 0.95 and 0.1 at 1.05 × the cut-off "
                               "frequency)")
    equalize.add_argument("--reference-voxel-size", type=float, metavar="Å",
                          help="voxel size in Å of the reference: required for an original DeePiCt TSV; for a "
                               "reference tomogram it overrides the header")
    equalize.add_argument("--reference-box", type=int, nargs=3, metavar=("NX", "NY", "NZ"),
                          help="box size in voxels of the tomogram an original DeePiCt TSV was extracted from "
                               "(required for that format; the order does not matter)")
    equalize.add_argument("--spectrum-out", metavar="SPEC.tsv",
                          help="also write the spectrum of the equalized tomogram (TSV)")
    _add_threads(equalize)
    equalize.set_defaults(handler=run_equalize)


def _add_threads(parser) -> None:
    parser.add_argument("--threads", type=int, default=default_workers(), metavar="N",
                        help="FFT threads (default %(default)s)")


def _threads(args) -> int:
    if args.threads < 1:
        raise ParameterError(f"--threads must be at least 1, got {args.threads}.")
    return args.threads


def _tomogram(path, voxel_size):
    volume = read_volume(path, check_finite=False)  # finiteness is checked while transforming
    size = voxel_size if voxel_size is not None else volume.voxel_size
    if size is None:
        raise InputFileError(path, "has no voxel size in its header",
                             "Give it with --voxel-size (Å), or fix the MRC header.")
    return volume, size


def _log(message: str) -> None:
    print(f"deepict: note: {message}", file=sys.stderr)


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def run_spectrum(args) -> int:
    threads = _threads(args)
    if is_volume_path(args.out):
        raise ParameterError(f"--out {args.out} looks like a volume; the spectrum is a table: give a .tsv name.")
    with claimed_outputs(("--out", args.out)):
        volume, voxel_size = _tomogram(args.tomogram, args.voxel_size)
        spectrum = radial_spectrum(volume.data, voxel_size, n_bins=args.bins, workers=threads, source=args.tomogram)
        write_spectrum(args.out, spectrum)
    print(f"deepict spectrum: wrote {args.out} ({len(spectrum)} shells up to {spectrum.max_frequency:.4g} 1/Å, "
          f"{voxel_size:g} Å/voxel)")
    return 0


def run_equalize(args) -> int:
    threads = _threads(args)
    if not is_volume_path(args.out):
        raise ParameterError(f"--out {args.out}: the equalized tomogram is written as MRC; give a name ending in .mrc.")
    if Path(args.out).exists() and Path(args.tomogram).exists() and _same_file(args.out, args.tomogram):
        raise ParameterError("--out names the input tomogram; write the equalized tomogram to a new file.")
    if args.spectrum_out and is_volume_path(args.spectrum_out):
        raise ParameterError(f"--spectrum-out {args.spectrum_out} looks like a volume; give a .tsv name.")
    with claimed_outputs(("--out", args.out), ("--spectrum-out", args.spectrum_out)):
        volume, voxel_size = _tomogram(args.tomogram, args.voxel_size)
        reference = load_reference(args.reference, voxel_size=args.reference_voxel_size,
                                   box_shape=args.reference_box, workers=threads, log=_log)
        # The output is streamed to disk slab by slab; the file appears (atomically) only on success.
        with volume_writer(args.out, volume.data.shape, np.float32, voxel_size) as write_slab:
            result = equalize_volume(volume.data, voxel_size, reference, lowpass_angstrom=args.lowpass_angstrom,
                                     lowpass_width=args.lowpass_width, write_slab=write_slab, workers=threads,
                                     source=args.tomogram, log=_log)
        if args.spectrum_out:
            write_spectrum(args.spectrum_out, result.output_spectrum)
    lowpass = f", low-pass {args.lowpass_angstrom:g} Å" if args.lowpass_angstrom else ""
    print(f"deepict equalize: wrote {args.out} ({voxel_size:g} Å/voxel, reference {args.reference}{lowpass})")
    return 0
