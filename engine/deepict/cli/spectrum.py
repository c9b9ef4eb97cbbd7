"""``deepict spectrum`` and ``deepict equalize``: measure and match radial amplitude spectra.

See :mod:`deepict.spectrum` for the definitions and the algorithm.
"""

from __future__ import annotations

import argparse
import sys

from deepict.errors import InputFileError, ParameterError
from deepict.jobs import EqualizeJob, SpectrumJob
from deepict.cli.options import add_command, add_parameter, positive_number

# numpy, scipy and the spectrum modules are imported inside the handlers, so that building the
# parser (every ``deepict`` call, ``--help`` included) stays fast.

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
    spectrum = add_command(
        subparsers, SpectrumJob, run_spectrum, help="measure a tomogram's radial amplitude spectrum (TSV)",
        description=SPECTRUM_DESCRIPTION, epilog=SPECTRUM_EPILOG, formatter_class=_FORMATTER)
    add_parameter(spectrum, SpectrumJob, "tomogram", "--tomogram", metavar="T.mrc")
    add_parameter(spectrum, SpectrumJob, "out", "--out", metavar="SPEC.tsv")
    add_parameter(spectrum, SpectrumJob, "voxel_size", "--voxel-size", type=positive_number, metavar="Å")
    add_parameter(spectrum, SpectrumJob, "bins", "--bins", type=int, metavar="N")
    add_parameter(spectrum, SpectrumJob, "threads", "--threads", type=int, metavar="N")

    equalize = add_command(
        subparsers, EqualizeJob, run_equalize,
        help="match a tomogram's amplitude spectrum to a reference (spectrum equalization)",
        description=EQUALIZE_DESCRIPTION, epilog=EQUALIZE_EPILOG, formatter_class=_FORMATTER)
    add_parameter(equalize, EqualizeJob, "tomogram", "--tomogram", metavar="T.mrc")
    add_parameter(equalize, EqualizeJob, "reference", "--reference", metavar="R.mrc|SPEC.tsv")
    add_parameter(equalize, EqualizeJob, "out", "--out", metavar="E.mrc")
    add_parameter(equalize, EqualizeJob, "voxel_size", "--voxel-size", type=positive_number, metavar="Å")
    add_parameter(equalize, EqualizeJob, "lowpass_angstrom", "--lowpass-angstrom", type=float, metavar="Å")
    add_parameter(equalize, EqualizeJob, "lowpass_width", "--lowpass-width", type=float, metavar="FRACTION")
    add_parameter(equalize, EqualizeJob, "reference_voxel_size", "--reference-voxel-size", type=positive_number, metavar="Å")
    add_parameter(equalize, EqualizeJob, "reference_box", "--reference-box", type=int, nargs=3,
                  metavar=("NX", "NY", "NZ"))
    add_parameter(equalize, EqualizeJob, "spectrum_out", "--spectrum-out", metavar="SPEC.tsv")
    add_parameter(equalize, EqualizeJob, "threads", "--threads", type=int, metavar="N")


def _threads(job) -> int:
    """The FFT threads of ``job``: every usable core unless it says otherwise."""
    if job.threads is None:
        from deepict.spectrum import default_workers
        return default_workers()
    if job.threads < 1:
        raise ParameterError(f"--threads must be at least 1, got {job.threads}.")
    return job.threads


def _tomogram(path, voxel_size):
    from deepict.io import read_volume
    volume = read_volume(path, check_finite=False)  # finiteness is checked while transforming
    size = voxel_size if voxel_size is not None else volume.voxel_size
    if size is None:
        raise InputFileError(path, "has no voxel size in its header",
                             "Give it with --voxel-size (Å), or fix the MRC header.")
    return volume, size


def _log(message: str) -> None:
    print(f"deepict: note: {message}", file=sys.stderr)


def run_spectrum(job: SpectrumJob) -> int:
    from deepict.io.outputs import claimed_outputs
    from deepict.spectrum import is_volume_path, radial_spectrum, write_spectrum
    threads = _threads(job)
    if is_volume_path(job.out):
        raise ParameterError(f"--out {job.out} looks like a volume; the spectrum is a table: give a .tsv name.")
    with claimed_outputs(("--out", job.out), job=job):
        volume, voxel_size = _tomogram(job.tomogram, job.voxel_size)
        spectrum = radial_spectrum(volume.data, voxel_size, n_bins=job.bins, workers=threads, source=job.tomogram)
        write_spectrum(job.out, spectrum)
    print(f"deepict spectrum: wrote {job.out} ({len(spectrum)} shells up to {spectrum.max_frequency:.4g} 1/Å, "
          f"{voxel_size:g} Å/voxel)")
    return 0


def run_equalize(job: EqualizeJob) -> int:
    import numpy as np
    from deepict.io import volume_writer
    from deepict.io.outputs import claimed_outputs
    from deepict.spectrum import equalize_volume, is_volume_path, load_reference, write_spectrum
    threads = _threads(job)
    if job.reference_box is not None and len(job.reference_box) != 3:
        raise ParameterError(f"--reference-box takes three sizes (NX NY NZ), not {len(job.reference_box)}.")
    if not is_volume_path(job.out):
        raise ParameterError(f"--out {job.out}: the equalized tomogram is written as MRC; give a name ending in .mrc.")
    if job.spectrum_out and is_volume_path(job.spectrum_out):
        raise ParameterError(f"--spectrum-out {job.spectrum_out} looks like a volume; give a .tsv name.")
    with claimed_outputs(("--out", job.out), ("--spectrum-out", job.spectrum_out), job=job):
        volume, voxel_size = _tomogram(job.tomogram, job.voxel_size)
        reference = load_reference(job.reference, voxel_size=job.reference_voxel_size,
                                   box_shape=job.reference_box, workers=threads, log=_log)
        # The output is streamed to disk slab by slab; the file appears (atomically) only on success.
        with volume_writer(job.out, volume.data.shape, np.float32, voxel_size) as write_slab:
            result = equalize_volume(volume.data, voxel_size, reference, lowpass_angstrom=job.lowpass_angstrom,
                                     lowpass_width=job.lowpass_width, write_slab=write_slab, workers=threads,
                                     source=job.tomogram, log=_log)
        if job.spectrum_out:
            write_spectrum(job.spectrum_out, result.output_spectrum)
    lowpass = f", low-pass {job.lowpass_angstrom:g} Å" if job.lowpass_angstrom else ""
    print(f"deepict equalize: wrote {job.out} ({voxel_size:g} Å/voxel, reference {job.reference}{lowpass})")
    return 0
