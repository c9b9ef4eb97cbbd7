"""The radial amplitude spectrum (:class:`RadialSpectrum`) and the checks of its parameters."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from deepict.errors import ParameterError

#: Metadata key of the box shape (z y x voxels) the spectrum was measured on.
BOX_SHAPE_KEY = "box_shape_zyx"


@dataclass
class RadialSpectrum:
    """A rotationally averaged Fourier amplitude profile in physical frequency.

    Attributes:
        frequency: shell centres in 1/Å, strictly increasing, > 0 (DC excluded).
        amplitude: mean Fourier amplitude of each shell (≥ 0), in the normalisation described in
            the module docstring for spectra measured here; any positive scale for spectra read
            from the original DeePiCt format (only the *shape* of a reference matters, because
            equalized output is re-normalised).
        voxel_size: voxel size in Å of the volume it was measured on (``None`` if unknown).
        metadata: free-form strings (``box_shape_zyx``, ``source``, ``format``, …) written as
            ``# key: value`` comments in TSV files.
    """

    frequency: np.ndarray
    amplitude: np.ndarray
    voxel_size: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.frequency = np.asarray(self.frequency, dtype=np.float64).ravel()
        self.amplitude = np.asarray(self.amplitude, dtype=np.float64).ravel()
        self.voxel_size = None if self.voxel_size is None else float(self.voxel_size)
        self.metadata = {str(k): str(v) for k, v in self.metadata.items()}
        problem = self.problem()
        if problem:
            raise ValueError(f"invalid radial spectrum: {problem}")

    def problem(self) -> str | None:
        """Why these arrays are not a usable spectrum, or ``None`` if they are."""
        f, a = self.frequency, self.amplitude
        if f.shape != a.shape:
            return f"{f.size} frequencies but {a.size} amplitudes"
        if f.size < 2:
            return f"only {f.size} value(s); at least 2 frequency shells are needed"
        if not (np.isfinite(f).all() and np.isfinite(a).all()):
            return "it holds NaN or infinite values"
        if f[0] <= 0 or np.any(np.diff(f) <= 0):
            return "frequencies must be positive and strictly increasing"
        if np.any(a < 0) or not np.any(a > 0):
            return "amplitudes must be ≥ 0 and not all zero"
        if self.voxel_size is not None and not (math.isfinite(self.voxel_size) and self.voxel_size > 0):
            return f"voxel size {self.voxel_size} is not a positive number"
        return None

    @property
    def max_frequency(self) -> float:
        """Highest shell centre in 1/Å."""
        return float(self.frequency[-1])

    def __len__(self) -> int:
        return int(self.frequency.size)

    def at(self, frequency) -> np.ndarray:
        """Amplitude linearly interpolated at ``frequency`` (1/Å); end values held outside the range."""
        return np.interp(np.asarray(frequency, dtype=np.float64), self.frequency, self.amplitude)


def checked_voxel_size(voxel_size, what: str = "voxel size") -> float:
    try:
        value = float(voxel_size)
    except (TypeError, ValueError):
        raise ParameterError(f"The {what} must be a number of Å, got {voxel_size!r}.") from None
    if not (math.isfinite(value) and value > 0):
        raise ParameterError(f"The {what} must be a positive number of Å, got {voxel_size!r}.")
    return value


def checked_box_shape(box_shape) -> tuple[int, int, int]:
    try:
        shape = tuple(int(s) for s in box_shape)
        exact = all(float(s) == int(s) for s in box_shape)
    except (TypeError, ValueError):
        raise ParameterError(f"The reference box must be three voxel counts, got {box_shape!r}.") from None
    if len(shape) != 3 or not exact or min(shape) < 2:
        raise ParameterError(f"The reference box must be three whole voxel counts ≥ 2, got {box_shape!r}.")
    return shape
