"""``deepict filaments``: trace filaments in a mask or probability map and sample oriented points along them."""

from __future__ import annotations

import argparse
import json

from deepict.conventions import FILAMENT_ID_COLUMN, voxel_sizes_differ
from deepict.errors import InputFileError, ParameterError
from deepict.jobs import FilamentsJob
from deepict.cli.options import add_command, add_parameter, positive_number

DESCRIPTION = """\
Trace the filaments (microtubules, actin, ...) of a segmentation along their centre lines and sample
points on them at a fixed spacing, each with its orientation, for sub-tomogram averaging of
filaments (RELION helical, Dynamo, Warp/M).

Per 26-connected piece of the mask: 2D holes up to 30 nm across are filled (a microtubule's lumen),
the mask is eroded (--erosion-angstrom), skeletonised and cut at its branch points. Pieces whose
ends lie within --join-distance-angstrom and whose directions agree within --join-angle are joined,
so that a filament cut at a crossing or by a hole in the mask is whole again while crossing or
touching filaments stay apart; the skeleton's short bridges between touching filaments are dropped.
Each filament is smoothed (a smoothing spline), prolonged to the ends of the mask, dropped if
shorter than --min-length-angstrom, and sampled every --spacing-angstrom of arc. A filament that
leaves the volume and comes back is two filaments. All lengths are in Å.

Output CSV: x, y, z (0-based voxels, x = fastest MRC axis), rot, tilt, psi (RELION ZYZ angles in
degrees: the reference's z axis along the filament; rot is free (0) or steps by --rot-step per
point), filament_id (1..K), arc_length_angstrom (from the filament's first point). `deepict export`
writes them as RELION priors (rlnAngleTiltPrior, rlnAnglePsiPrior, rlnHelicalTubeID,
rlnHelicalTrackLengthAngst), Dynamo and Warp angles, copick matrices. An empty mask gives a table
with no rows. Prints one JSON line: filaments, points, voxel_size, out.
"""

EPILOG = """\
examples:
  deepict filaments --mask microtubules.mrc --spacing-angstrom 40 --out filaments.csv
  deepict filaments --probability-map mt_probabilities.mrc --threshold 0.6 --spacing-angstrom 82 \\
      --erosion-angstrom 60 --rot-step 27.69 --out filaments.csv

Exit status 2 on bad input (the message names the file and the fix).
"""


def register(subparsers) -> None:
    parser = add_command(subparsers, FilamentsJob, run, help="trace filaments in a mask and sample oriented points "
                                                             "along them",
                         description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    add_parameter(source, FilamentsJob, "mask", "--mask", metavar="MASK.mrc")
    add_parameter(source, FilamentsJob, "probability_map", "--probability-map", metavar="P.mrc")
    add_parameter(parser, FilamentsJob, "threshold", "--threshold", type=float)
    add_parameter(parser, FilamentsJob, "voxel_size", "--voxel-size", type=positive_number, metavar="Å")
    add_parameter(parser, FilamentsJob, "out", "--out", metavar="FILAMENTS.csv")
    for path, flag, kind in (("spacing_angstrom", "--spacing-angstrom", "Å"),
                             ("min_length_angstrom", "--min-length-angstrom", "Å"),
                             ("erosion_angstrom", "--erosion-angstrom", "Å"),
                             ("join_distance_angstrom", "--join-distance-angstrom", "Å"),
                             ("join_angle", "--join-angle", "DEGREES"), ("rot_step", "--rot-step", "DEGREES")):
        add_parameter(parser, FilamentsJob, f"tracing.{path}", flag, type=float, metavar=kind)


def _voxel_size(job: FilamentsJob, path: str, header: float | None) -> float:
    """The voxel size: --voxel-size, else the header; a map whose header disagrees with --voxel-size is refused."""
    given = job.voxel_size
    if given is not None and not given > 0:
        raise ParameterError(f"--voxel-size must be a positive number of Å, got {given:g}")
    if given is not None and voxel_sizes_differ(given, header):
        raise InputFileError(path, f"has a voxel size of {header:g} Å in its header, not the {given:g} Å given with "
                                   "--voxel-size",
                             f"Trace the map at its own voxel size (leave out --voxel-size), or rescale it to "
                             f"{given:g} Å first; if the header is wrong, fix it (IMOD 'alterheader -del').")
    size = given or header
    if size is None:
        raise InputFileError(path, "has no voxel size in its header (0 Å)",
                             "Give it with --voxel-size (Å): every length of the trace is in Å.")
    return float(size)


def run(job: FilamentsJob) -> int:
    import numpy as np
    from deepict.filaments.masks import binary_mask
    from deepict.infer.clusters import MAP_FILLING_FRACTION, segmentation_fills_the_map
    from deepict.io import read_volume, write_coordinates
    from deepict.io.outputs import claimed_outputs
    from deepict.progress import print_line
    if (job.mask is None) == (job.probability_map is None):
        raise ParameterError("Give the filaments as one of --mask M.mrc or --probability-map P.mrc.")
    from deepict.filaments.trace import trace_filaments  # scikit-image: loaded when a trace runs, not for --help

    path = job.mask or job.probability_map
    with claimed_outputs(("--out", job.out), job=job):
        volume = read_volume(path, check_finite=bool(job.probability_map))  # NaN voxels of a mask are no filament
        voxel_size = _voxel_size(job, path, volume.voxel_size)
        job.tracing.check(voxel_size)
        mask = binary_mask(volume.data, None if job.mask else job.threshold, path)
        if segmentation_fills_the_map(int(np.count_nonzero(mask)), mask.size, unknown_share_limit=MAP_FILLING_FRACTION):
            print(f"warning: {path}: {100 * np.count_nonzero(mask) / mask.size:.0f} % of its voxels are filament, "
                  f"more than {100 * MAP_FILLING_FRACTION:g} %: no filament mask (a tomogram or a membrane mask given "
                  "as one?), and its tracing means nothing", flush=True)
        table = trace_filaments(mask, voxel_size, job.tracing, log=print_line)
        write_coordinates(job.out, table)
    filaments = len(set(table.column(FILAMENT_ID_COLUMN).tolist()))
    print(json.dumps({"filaments": filaments, "points": len(table), "voxel_size": float(f"{voxel_size:.6g}"),
                      "out": job.out}))
    return 0
