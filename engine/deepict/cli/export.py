"""``deepict export``: picks to RELION 4 / RELION 5 / Warp / Dynamo / DeePiCt motl files or a copick project."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deepict.conventions import voxel_sizes_differ
from deepict.errors import ParameterError
from deepict.jobs import ExportJob
from deepict.cli.options import add_command, add_parameter, positive_number, tomogram_names

DESCRIPTION = """\
Write picked coordinates in the format of a downstream sub-tomogram averaging program.

Each --coords file (CSV x,y,z with optional 'score' and 'class' columns, as `deepict pick` writes
it, or a DeePiCt motl; 0-based voxels of its tomogram) is paired with the --tomogram at the same
position. The tomogram gives the tsId (its file name without extension, or the matching --tomo-name),
the size and the voxel size (from the MRC header, or --voxel-size). Coordinates outside their
tomogram (the error says when they would fit with x and z swapped: columns in z, y, x order), or
picked at another voxel size (the '# voxel_size_angstrom' line of the CSV), are refused; a row
repeated verbatim counts once.

Orientations: a table with rot, tilt, psi columns (RELION ZYZ degrees, as `deepict filaments` and
`deepict pick --orient-by-context` write them) is exported with its angles, otherwise angles are 0.

Classes: numbers are written as they are; names (ribosome, ...) are numbered 1..K in sorted order
over all the files, and the map is written beside the export as <output name>.classes.csv
(number,name) and printed in the summary. Warp files carry no class.

Formats and what --out is:
  relion4  one STAR file, table data_particles: rlnTomoName, rlnTomoParticleId,
           rlnTomoManifoldIndex, rlnCoordinateX/Y/Z (pixels at the output pixel size, 0-based,
           no +1 as in Scipion's reliontomo), origins 0, rlnAngleRot/Tilt/Psi (with
           rlnAngleTiltPrior/rlnAnglePsiPrior when the table has angles, and rlnHelicalTubeID /
           rlnHelicalTrackLengthAngst for filaments), rlnClassNumber, rlnRandomSubset,
           rlnAutopickFigureOfMerit (= score).
  relion5  one STAR file ('# version 50001', data_particles): rlnTomoName,
           rlnCenteredCoordinateX/Y/ZAngst = (x - size/2) * voxel size (RELION 5's centre is
           size/2 in 0-based voxels, e.g. 32 for 64 voxels, 32.5 for 65; in Å, so independent of
           --output-pixel-size), rlnCoordinateX/Y/Z as for relion4 (what Scipion's reliontomo
           import reads), angles and priors as for relion4, rlnClassNumber,
           rlnAutopickFigureOfMerit.
  warp     a FOLDER with one <tsId>.star per tomogram: rlnCoordinateX/Y/Z (pixels at the output
           pixel size, 0 = centre of the first voxel), angles (RELION's), rlnMicrographName =
           <tsId>.tomostar, rlnAutopickFigureOfMerit. Use WarpTools ts_export_particles with
           --coords_angpix equal to the output pixel size.
  dynamo   a .tbl file (40 columns: 1 tag, 7-9 tdrot tilt narot, 10 cc = score, 20 tomogram
           index, 22 class, 24-26 x y z as 0-based values with no +1, like Scipion's dynamo plugin) and a .doc file
           beside it mapping each tomogram index to its tomogram path. As the .doc points at the
           given tomograms, the .tbl is in their voxels: another --output-pixel-size is refused.
  motl     DeePiCt 20-column CSV (1 score, 4 index, 8-10 x y z, 20 class); --out is a .csv file
           for a single tomogram, otherwise a folder receiving <tsId>.csv per tomogram.
  copick   a copick project (the CZ cryo-ET data portal's format): --out is its config JSON or its
           folder (copick_config.json there; created when missing, with the folder as overlay root).
           Each tomogram's picks go to run <tsId>, file ExperimentRuns/<tsId>/Picks/
           <user>_<session>_<object>.json (--copick-user-id, --copick-session-id; all picks to
           --copick-object, or one object per class name), points in Å (voxel * voxel size),
           4x4 matrices of the angles (identity without them), scores kept; a missing object is added to the config (a particle,
           radius --copick-radius Å). Read back with `deepict import-picks`.

--output-pixel-size rescales to another sampling (e.g. the unbinned tilt-series pixel size for
RELION): x_out = x * tomogram voxel size / output pixel size, the convention Scipion applies to
corner-frame coordinates. An export appears complete or not at all: it is written beside the output
first, then swapped in, an earlier export being restored if that fails. A folder output (warp, motl)
is replaced as a whole, so exports never mix; a folder holding other files is refused. Prints a JSON
summary (format, files, particles, tomograms, output_pixel_size, classes) on stdout.
"""

EPILOG = """\
examples:
  deepict export --coords TS_01_picks.csv --tomogram TS_01.mrc --format relion4 \\
      --output-pixel-size 3.37 --out particles.star
  deepict export --coords a.csv b.csv --tomogram a.mrc b.mrc --format warp --out warp_particles/
  deepict export --coords picks.csv --tomogram tomo_bin4.mrc --tomo-name TS_01 --format dynamo \\
      --out particles.tbl
  deepict export --coords TS_01_picks.csv --tomogram TS_01.mrc --format copick --out my_project/ \\
      --copick-object ribosome --copick-user-id deepict --copick-session-id 0
"""


def register(subparsers) -> None:
    parser = add_command(
        subparsers, ExportJob, run, help="write picks for RELION 4/5, Warp, Dynamo, copick or as a DeePiCt motl",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_parameter(parser, ExportJob, "coords", "--coords", action="extend", nargs="+", metavar="CSV")
    add_parameter(parser, ExportJob, "tomogram", "--tomogram", action="extend", nargs="+", metavar="MRC")
    add_parameter(parser, ExportJob, "format", "--format")
    add_parameter(parser, ExportJob, "out", "--out", metavar="PATH")
    add_parameter(parser, ExportJob, "output_pixel_size", "--output-pixel-size", type=positive_number, metavar="Å")
    add_parameter(parser, ExportJob, "tomo_name", "--tomo-name", action="extend", nargs="+", metavar="TSID")
    add_parameter(parser, ExportJob, "voxel_size", "--voxel-size", type=positive_number, metavar="Å")
    add_parameter(parser, ExportJob, "copick_object", "--copick-object", metavar="NAME")
    add_parameter(parser, ExportJob, "copick_user_id", "--copick-user-id", metavar="ID")
    add_parameter(parser, ExportJob, "copick_session_id", "--copick-session-id", metavar="ID")
    add_parameter(parser, ExportJob, "copick_radius", "--copick-radius", type=float, metavar="Å")


def run(job: ExportJob) -> int:
    from deepict.io import check_coordinates_in_volume, read_coordinates
    from deepict.io.outputs import FILE_OR_FOLDER, claimed_outputs
    from deepict import formats as export
    from deepict.formats import copick
    if len(job.coords) != len(job.tomogram):
        raise ParameterError(
            f"{len(job.coords)} coordinate file(s) but {len(job.tomogram)} tomogram(s): give one --tomogram per "
            "--coords file, in the same order.")
    names = tomogram_names(job.tomo_name, job.tomogram)
    if job.voxel_size is not None and not job.voxel_size > 0:
        raise ParameterError(f"--voxel-size must be > 0 Å, got {job.voxel_size}.")
    export.check_output_pixel_size(job.output_pixel_size)
    if job.format == copick.COPICK_FORMAT and job.output_pixel_size is not None:
        raise ParameterError("copick picks are in Å: --output-pixel-size does not apply to --format copick.")
    picks = []
    for coords_path, tomogram_path, name in zip(job.coords, job.tomogram, names):
        tomogram = export.TomogramInfo.from_volume(tomogram_path, name=name, voxel_size=job.voxel_size)
        coords = read_coordinates(coords_path)
        check_coordinates_in_volume(coords.xyz, tomogram.shape_zyx, coords_path)
        if voxel_sizes_differ(coords.voxel_size, tomogram.voxel_size):
            raise ParameterError(
                f"{coords_path} was picked at {coords.voxel_size:g} Å/voxel but {tomogram_path} has "
                f"{tomogram.voxel_size:g} Å/voxel: pair each coordinate file with the tomogram it was picked on "
                "(or fix the header with --voxel-size).")
        if not len(coords):  # stderr: stdout is the export's JSON summary
            print(f"warning: {coords_path} holds no coordinates: the export has none of {Path(tomogram_path).name} "
                  "(an empty pick: see its log, or pick at a lower --threshold)", file=sys.stderr)
        if coords.angles() is not None and not export.carries_orientations(job.format):
            print(f"warning: {coords_path}: its orientations (rot, tilt, psi) are not written: {job.format} files "
                  "carry none here (relion4, relion5, warp, dynamo and copick do)", file=sys.stderr)
        picks.append(export.PickedTomogram(tomogram, coords))
    if job.format == copick.COPICK_FORMAT:
        files = copick.write_project(job.out, picks, job.copick_object, job.copick_user_id, job.copick_session_id,
                                     radius=job.copick_radius)
        # the project's config is written too (created, or its objects added); copick names objects, numbers none
        print(export_summary(job.format, [copick.config_path(job.out), *files], picks), flush=True)
        return 0
    with claimed_outputs(("--out", job.out, FILE_OR_FOLDER), job=job):
        files = export.export_coordinates(job.format, job.out, picks, output_pixel_size=job.output_pixel_size)
    classes = export.class_name_map(picks) if export.carries_classes(job.format) else None
    print(export_summary(job.format, files, picks, job.output_pixel_size, classes), flush=True)
    return 0


def export_summary(fmt: str, files, picks, output_pixel_size: float | None = None,
                   classes: dict | None = None) -> str:
    """The JSON summary every format's export prints on stdout, with the same keys for all: ``format``, ``files``
    (every file written), ``particles``, ``tomograms``, ``output_pixel_size`` (None: each tomogram's voxel size)
    and ``classes`` (the numbers given to class names; None when the format writes no number)."""
    return json.dumps({"format": fmt, "files": [str(f) for f in files],
                       "particles": int(sum(len(coordinates) for _, coordinates in picks)), "tomograms": len(picks),
                       "output_pixel_size": output_pixel_size, "classes": classes}, indent=2)
