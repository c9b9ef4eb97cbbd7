"""Spectrum files: our TSV and the original DeePiCt one.

DeePiCt-scipion TSV (written by :func:`write_spectrum`)::

    # voxel_size_angstrom: 13.48
    # box_shape_zyx: 128 256 256
    frequency_per_angstrom<TAB>amplitude
    0.000289763<TAB>12.43
    ...

Original DeePiCt TSV (``extract_spectrum.py``): header ``freq<TAB>intensity`` and B rows
``j<TAB>mean amplitude`` in *index* units of the box it was measured on. It is converted to
physical frequency by :func:`spectrum_from_original`, which needs that box's shape and voxel size.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from deepict.conventions import SPECTRUM_AMPLITUDE_COLUMN as AMPLITUDE_COLUMN
from deepict.conventions import SPECTRUM_FREQUENCY_COLUMN as FREQUENCY_COLUMN
from deepict.conventions import VOXEL_SIZE_KEY
from deepict.errors import InputFileError
from deepict.io import atomic_path, check_readable
from deepict.spectrum.profile import BOX_SHAPE_KEY, RadialSpectrum, checked_box_shape, checked_voxel_size


def spectrum_from_original(amplitudes, voxel_size: float, box_shape: Sequence[int],
                           metadata: dict[str, str] | None = None) -> RadialSpectrum:
    """Convert an original DeePiCt profile (index-unit shells) to physical frequency.

    The original (``DEEPICT.md`` §2.1) measured a box of shape ``box_shape`` with B = max(shape)/2
    shells over the index-space corner radius ``r_max = sqrt(Σ (n_k / 2)²)``, so shells are
    ``w = r_max / B`` index units wide and row j covers index radii [(j + 1) w, (j + 2) w). Row j is
    placed at its centre ``(j + 1.5) w`` and converted with ``f = r / (max(shape) · voxel_size)``.

    Approximation: the original radius was measured in index units on the raw grid, so for a
    non-cubic box one index step along a short axis is a larger frequency step than along the
    longest axis; the conversion is exact for cubic boxes and along the longest axes, and shells
    of non-cubic boxes mix somewhat higher physical frequencies than the assigned one. The
    amplitude scale (min–max normalised data, unnormalised FFT) differs from ours; it does not
    matter for equalization, whose output is re-normalised. The last row may lie beyond the
    reference's Nyquist frequency (the shells reach the corners of the Fourier box).

    Raises:
        ParameterError: bad voxel size or box shape.
        ValueError: fewer than 2 amplitudes or a row count that does not fit the box (callers
            reading files turn this into :class:`InputFileError`).
    """
    voxel_size = checked_voxel_size(voxel_size, "reference voxel size")
    shape = checked_box_shape(box_shape)
    amplitudes = np.asarray(amplitudes, dtype=np.float64).ravel()
    longest = max(shape)
    expected = {longest // 2, (longest + 1) // 2}
    if amplitudes.size not in expected:
        raise ValueError(f"it has {amplitudes.size} rows, but a box of {' × '.join(map(str, shape))} voxels gives "
                         f"max(shape)/2 = {longest / 2:g} rows")
    r_max = math.sqrt(sum((n / 2.0) ** 2 for n in shape))
    width = r_max / (longest / 2.0)
    radius = (np.arange(amplitudes.size) + 1.5) * width
    meta = {BOX_SHAPE_KEY: " ".join(str(s) for s in shape),
            "format": "deepict-original (index shells converted to 1/Å; approximate for non-cubic boxes)"}
    meta.update(metadata or {})
    return RadialSpectrum(radius / (longest * voxel_size), amplitudes, voxel_size, meta)


def write_spectrum(path, spectrum: RadialSpectrum) -> None:
    """Write a spectrum as our TSV (metadata comments, header, one row per shell), atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="\n") as handle:
            handle.write("# DeePiCt-scipion radial amplitude spectrum\n")
            if spectrum.voxel_size is not None:
                handle.write(f"# {VOXEL_SIZE_KEY}: {spectrum.voxel_size:g}\n")
            for key, value in spectrum.metadata.items():
                if key != VOXEL_SIZE_KEY:
                    handle.write(f"# {key}: {' '.join(value.split())}\n")
            handle.write(f"{FREQUENCY_COLUMN}\t{AMPLITUDE_COLUMN}\n")
            for f, a in zip(spectrum.frequency, spectrum.amplitude):
                handle.write(f"{f:.9g}\t{a:.9g}\n")


def _split(line: str) -> list[str]:
    return [c.strip() for c in line.split("\t")] if "\t" in line else line.split()


def _parse_float(text: str, path, row: int, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputFileError(path, f"row {row}: the {column} value {text!r} is not a number",
                             "Repair or re-create the spectrum file.") from None


def read_spectrum(path, voxel_size: float | None = None, box_shape: Sequence[int] | None = None) -> RadialSpectrum:
    """Read a spectrum TSV in our format or in the original DeePiCt format (see the module docstring).

    Args:
        path: the TSV file.
        voxel_size: Å; required for the original format (it has no frequencies, only shell
            indices); for our format only a fallback when the file does not name its voxel size.
        box_shape: voxel counts of the box the original spectrum was measured on (any order);
            required for the original format, ignored for ours.

    Raises:
        InputFileError: missing file, unreadable or binary file, unknown header, missing columns,
            non-numeric / NaN / negative values, too few rows, an original-format file without
            voxel size or box shape, or whose row count does not fit the box.
    """
    path = check_readable(path, "spectrum file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as exc:
        raise InputFileError(path, f"is not a readable text spectrum table ({exc.__class__.__name__})",
                             "Give a spectrum TSV (from 'deepict spectrum' or DeePiCt's extract_spectrum.py) "
                             "or an MRC tomogram ending in .mrc.") from None
    metadata: dict[str, str] = {}
    rows: list[tuple[int, list[str]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            key, sep, value = stripped.lstrip("#").partition(":")
            if sep:
                metadata[key.strip()] = value.strip()
            continue
        rows.append((number, _split(stripped)))
    if not rows:
        raise InputFileError(path, "holds no spectrum table",
                             "Give a spectrum TSV with a header and one row per shell.")
    header = [h.lower() for h in rows[0][1]]
    body = rows[1:]
    if body and all(len(fields) == len(header) + 1 for _, fields in body):
        body = [(n, fields[1:]) for n, fields in body]  # a leading row-index column (pandas to_csv)
    if any(len(fields) != len(header) for _, fields in body):
        line = next(n for n, fields in body if len(fields) != len(header))
        raise InputFileError(path, f"line {line} has a different number of fields than the header {rows[0][1]}",
                             "Repair the table so that every row has one value per header column.")
    if FREQUENCY_COLUMN in header or AMPLITUDE_COLUMN in header:
        missing = [c for c in (FREQUENCY_COLUMN, AMPLITUDE_COLUMN) if c not in header]
        if missing:
            raise InputFileError(path, f"the header {rows[0][1]} lacks the column(s) {', '.join(missing)}",
                                 f"A DeePiCt-scipion spectrum needs the columns {FREQUENCY_COLUMN} and "
                                 f"{AMPLITUDE_COLUMN}.")
        fi, ai = header.index(FREQUENCY_COLUMN), header.index(AMPLITUDE_COLUMN)
        freq = [_parse_float(fields[fi], path, n, FREQUENCY_COLUMN) for n, fields in body]
        amp = [_parse_float(fields[ai], path, n, AMPLITUDE_COLUMN) for n, fields in body]
        size_text = metadata.get(VOXEL_SIZE_KEY)
        file_voxel = None
        if size_text is not None:
            try:
                file_voxel = float(size_text)
            except ValueError:
                raise InputFileError(path, f"the '{VOXEL_SIZE_KEY}' comment {size_text!r} is not a number",
                                     "Fix or remove that comment line.") from None
        meta = {k: v for k, v in metadata.items() if k != VOXEL_SIZE_KEY}
        meta["file"] = str(path)
        size = file_voxel if file_voxel else voxel_size
        return _spectrum_or_error(path, lambda: RadialSpectrum(freq, amp, size, meta))
    if "intensity" in header:
        ii = header.index("intensity")
        amp = [_parse_float(fields[ii], path, n, "intensity") for n, fields in body]
        if voxel_size is None or box_shape is None:
            raise InputFileError(
                path, "is an original DeePiCt spectrum (columns freq, intensity), whose shells are in index units "
                      "of the tomogram it was extracted from",
                "Give that tomogram's voxel size and box shape (--reference-voxel-size and --reference-box "
                "X Y Z) so that it can be converted to physical frequency.")
        meta = {"file": str(path)}
        return _spectrum_or_error(path, lambda: spectrum_from_original(amp, voxel_size, box_shape, meta))
    raise InputFileError(
        path, f"has an unrecognised header {rows[0][1]}",
        f"Expected '{FREQUENCY_COLUMN}<TAB>{AMPLITUDE_COLUMN}' (deepict spectrum) or 'freq<TAB>intensity' "
        "(DeePiCt extract_spectrum.py).")


def _spectrum_or_error(path, build: Callable[[], RadialSpectrum]) -> RadialSpectrum:
    try:
        return build()
    except ValueError as exc:
        problem = str(exc).removeprefix("invalid radial spectrum: ")
        raise InputFileError(
            path, f"is not a usable spectrum: {problem}",
            "Re-create it with 'deepict spectrum', or check the reference box and voxel size.") from None
