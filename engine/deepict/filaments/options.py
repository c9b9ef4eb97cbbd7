"""How filaments are traced and sampled: the parameters of ``deepict filaments``, every length in Å.

Declared here, beside the tracing that uses them, with their defaults and help
(:mod:`deepict.parameters`); :mod:`deepict.jobs` puts them into the filaments job. Plain Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from deepict.errors import ParameterError
from deepict.parameters import parameter


@dataclass(kw_only=True)
class FilamentOptions:
    """How filaments are traced and sampled (lengths in Å, converted with the voxel size once)."""

    spacing_angstrom: float = parameter(help="arc length in Å between two points sampled along a filament (at least "
                                             "one voxel), e.g. 40 for 4 nm steps, or a helical rise")
    min_length_angstrom: float = parameter(200.0, help="filaments shorter than this many Å after joining are "
                                                       "dropped (default %(default)s)")
    erosion_angstrom: float = parameter(0.0, help="erode the mask by this many Å before the skeleton, to separate "
                                                  "filaments that touch (about a third of their diameter; default "
                                                  "%(default)s = none)")
    join_distance_angstrom: float = parameter(300.0, help="largest gap in Å between two pieces joined into one "
                                                          "filament (across a crossing, a contact or a hole in the "
                                                          "mask; default %(default)s)")
    join_angle: float = parameter(30.0, help="largest bend in degrees at a join, between the pieces' directions and "
                                             "the gap (crossing filaments meet at larger angles and stay apart; "
                                             "default %(default)s)")
    rot_step: float = parameter(0.0, help="rot of the n-th point of a filament is n times this many degrees (e.g. "
                                          "27.69 = 360/13 for a 13-protofilament microtubule); 0 leaves rot at 0, "
                                          "free for the averaging to search (default %(default)s)")

    def check(self, voxel_size: float) -> None:
        """Refuse values no trace can use, naming the option and the fix."""
        if not (math.isfinite(voxel_size) and voxel_size > 0):
            raise ParameterError(f"The voxel size must be a positive number of Å, got {voxel_size!r}.")
        if not (math.isfinite(self.spacing_angstrom) and self.spacing_angstrom >= voxel_size):
            raise ParameterError(
                f"--spacing-angstrom {self.spacing_angstrom:g} is smaller than a voxel ({voxel_size:g} Å): points "
                f"closer than a voxel carry no new position. Give a spacing of at least {voxel_size:g} Å.")
        for name, value in (("--min-length-angstrom", self.min_length_angstrom),
                            ("--erosion-angstrom", self.erosion_angstrom),
                            ("--join-distance-angstrom", self.join_distance_angstrom)):
            if not (math.isfinite(value) and value >= 0):
                raise ParameterError(f"{name} must be a length >= 0 Å, got {value:g}.")
        if not 0 <= self.join_angle <= 90:
            raise ParameterError(f"--join-angle must be between 0 and 90 degrees, got {self.join_angle:g}.")
        if not math.isfinite(self.rot_step):
            raise ParameterError(f"--rot-step must be a number of degrees, got {self.rot_step!r}.")
