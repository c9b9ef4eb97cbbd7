"""``deepict filter-context``: keep the coordinates of any picker that lie where a context mask says."""

from __future__ import annotations

import argparse
import json
import math
import sys

from deepict.conventions import voxel_sizes_differ
from deepict.errors import InputFileError, ParameterError
from deepict.jobs import FilterContextJob
from deepict.cli.options import add_command, add_parameter, positive_number

DESCRIPTION = """\
Split a coordinate table of any picker (template matching, crYOLO, manual picks, deepict pick) by a
context mask of any tool (deepict segment2d/segment3d, membrain-seg, a drawn mask): the rows kept go
to --out, the others to --rejected, each with all its columns, in input order. Together they are
exactly the input rows.

Modes (as --context-mode of 'deepict pick', for points; distances in Å):
  intersection    the point lies in the mask (voxels above 0);
  contact         the point lies in the mask or within --distance-angstrom of it;
  colocalization  the point lies within --distance-angstrom of the mask's surface, inside or outside
                  (a compartment's border, a membrane); points deep inside the mask are rejected.
The distance of a point is 0 in a voxel of the mask (of its surface), else the distance to the
nearest voxel centre. The volume's edges are no surface.

The mask may be binned differently from the coordinates: the coordinates are scaled into the
mask's voxels by the two voxel sizes (same field of view). A mask that does not cover the
tomogram (--tomogram) or a coordinate is refused. Prints one JSON line: kept, rejected, ...
"""

EPILOG = """\
examples:
  deepict filter-context --coords tm_picks.csv --context cytosol.mrc --mode intersection --out in_cytosol.csv
  deepict filter-context --coords tm_picks.csv --context membranes.mrc --mode contact --distance-angstrom 100 \\
      --out near_membranes.csv --rejected elsewhere.csv --tomogram TS_01.mrc

Exit status 2 on bad input (the message names the file and the fix).
"""


def register(subparsers) -> None:
    parser = add_command(subparsers, FilterContextJob, run, help="keep the coordinates of any picker inside / near "
                                                                 "a context mask",
                         description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_parameter(parser, FilterContextJob, "coords", "--coords", metavar="CSV")
    add_parameter(parser, FilterContextJob, "context", "--context", metavar="MASK.mrc")
    add_parameter(parser, FilterContextJob, "mode", "--mode")
    add_parameter(parser, FilterContextJob, "distance_angstrom", "--distance-angstrom", type=float, metavar="Å")
    add_parameter(parser, FilterContextJob, "out", "--out", metavar="KEPT.csv")
    add_parameter(parser, FilterContextJob, "rejected", "--rejected", metavar="REJECTED.csv")
    add_parameter(parser, FilterContextJob, "tomogram", "--tomogram", metavar="T.mrc")
    add_parameter(parser, FilterContextJob, "voxel_size", "--voxel-size", type=positive_number, metavar="Å")
    add_parameter(parser, FilterContextJob, "context_voxel_size", "--context-voxel-size", type=positive_number, metavar="Å")


def _note(message: str) -> None:
    print(f"deepict filter-context: note: {message}", file=sys.stderr)


def _given(value, option: str) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ParameterError(f"{option} must be a positive number of Å, got {value:g}")
    return value


def _voxel_sizes(job: FilterContextJob, table, mask, tomogram) -> tuple[float, float]:
    """(coordinates' voxel size, mask's voxel size) in Å, from the options, the files, else each other."""
    coords_size = _given(job.voxel_size, "--voxel-size")
    if coords_size is None:
        header = tomogram.voxel_size if tomogram is not None else None
        if voxel_sizes_differ(table.voxel_size, header):
            raise InputFileError(job.coords, f"its voxel size {table.voxel_size:g} Å differs from the header of its "
                                             f"tomogram {job.tomogram} ({header:g} Å)",
                                 "Give the coordinates' voxel size with --voxel-size.")
        coords_size = table.voxel_size or header
    mask_size = _given(job.context_voxel_size, "--context-voxel-size") or mask.voxel_size
    if coords_size is None and mask_size is None:
        raise InputFileError(job.coords, f"has no voxel size, nor has the mask {job.context}",
                             "Give them with --voxel-size and --context-voxel-size (Å).")
    if coords_size is None:
        _note(f"{job.coords} gives no voxel size: taken as the mask's, {mask_size:g} Å (else give --voxel-size)")
    if mask_size is None:
        _note(f"{job.context} has no voxel size: taken as the coordinates', {coords_size:g} Å "
              "(else give --context-voxel-size)")
    return coords_size or mask_size, mask_size or coords_size


def _warn_if_nothing_to_keep(job: FilterContextJob, table, split, mask) -> None:
    """Say why an empty result is empty when the inputs, not the particles, made it so (stderr: stdout is the
    JSON summary)."""
    import numpy as np
    from deepict.io import iter_slabs
    if not len(table):
        print(f"warning: {job.coords} holds no coordinates: nothing to filter", file=sys.stderr)
        return
    if len(split.kept):
        return
    inside = [int(np.count_nonzero(slab > 0)) for _, slab in iter_slabs(mask.data)]
    if not sum(inside):
        print(f"warning: {job.context} has no voxel above 0 (no context): every coordinate is rejected",
              file=sys.stderr)
    elif job.mode == "colocalization" and sum(inside) == mask.data.size:
        print(f"warning: {job.context} is above 0 everywhere: it has no surface to colocalize with, so every "
              "coordinate is rejected (use --mode intersection or contact)", file=sys.stderr)


def run(job: FilterContextJob) -> int:
    from deepict.infer.context_filter import split_by_context
    from deepict.io import read_coordinates, read_volume, write_coordinates
    from deepict.io.outputs import claimed_outputs
    with claimed_outputs(("--out", job.out), ("--rejected", job.rejected), job=job):
        table = read_coordinates(job.coords)
        mask = read_volume(job.context, check_finite=False)  # NaN is no context (not > 0)
        tomogram = read_volume(job.tomogram, check_finite=False) if job.tomogram else None
        coords_size, mask_size = _voxel_sizes(job, table, mask, tomogram)
        split = split_by_context(table, coords_size, mask, mask_size, job.mode, job.distance_angstrom,
                                 coords_path=job.coords,
                                 tomogram_shape_zyx=tomogram.data.shape if tomogram is not None else None)
        write_coordinates(job.out, split.kept)
        if job.rejected:
            write_coordinates(job.rejected, split.rejected)
    _warn_if_nothing_to_keep(job, table, split, mask)
    print(json.dumps({"kept": len(split.kept), "rejected": len(split.rejected), "mode": job.mode,
                      "distance_angstrom": job.distance_angstrom, "voxel_size": coords_size,
                      "context_voxel_size": mask_size}))
    return 0
