"""``deepict import-picks`` and ``deepict import-star``: picks of a copick project, or of a RELION 4/5 particles STAR
file, to our coordinate tables."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from deepict.errors import ParameterError
from deepict.jobs import ImportPicksJob, ImportStarJob
from deepict.cli.options import add_command, add_parameter, positive_number, tomogram_names

DESCRIPTION = """\
Read the picks of a copick project (the CZ cryo-ET data portal's format) into coordinate CSVs.

For each --run, the file ExperimentRuns/<run>/Picks/<user id>_<session id>_<object>.json is read from
the project's overlay root, else its static root (local folders). Its points (in Å; the centre is the
location plus the orientation matrix's shift, as copick defines it) become 0-based voxels at
--voxel-size: x = location / voxel size. The CSV holds x,y,z and score, with the voxel size in its
'# voxel_size_angstrom' line, ready for `deepict evaluate`, `deepict export` or training.

--out is a .csv file for one run, otherwise a folder receiving <run>.csv per run. Prints a JSON summary
(files, particles per run) on stdout. `deepict export --format copick` writes such projects.
"""

EPILOG = """\
examples:
  deepict import-picks --copick my_project/copick_config.json --run TS_01 --object ribosome \\
      --user-id deepict --session-id 0 --voxel-size 13.48 --out TS_01_picks.csv
  deepict import-picks --copick my_project --run TS_01 TS_02 --object ribosome --user-id curation \\
      --session-id 0 --voxel-size 10 --out picks/
"""


def register(subparsers) -> None:
    parser = add_command(
        subparsers, ImportPicksJob, run, help="read picks of a copick project into coordinate CSVs",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_parameter(parser, ImportPicksJob, "copick", "--copick", metavar="CONFIG")
    add_parameter(parser, ImportPicksJob, "run", "--run", action="extend", nargs="+", metavar="RUN")
    add_parameter(parser, ImportPicksJob, "object", "--object", metavar="NAME")
    add_parameter(parser, ImportPicksJob, "user_id", "--user-id", metavar="ID")
    add_parameter(parser, ImportPicksJob, "session_id", "--session-id", metavar="ID")
    add_parameter(parser, ImportPicksJob, "voxel_size", "--voxel-size", type=positive_number, metavar="Å")
    add_parameter(parser, ImportPicksJob, "out", "--out", metavar="PATH")
    star = add_command(
        subparsers, ImportStarJob, run_star, help="read a RELION 4/5 particles STAR file into coordinate CSVs",
        description=STAR_DESCRIPTION, epilog=STAR_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_parameter(star, ImportStarJob, "star", "--star", metavar="STAR")
    add_parameter(star, ImportStarJob, "tomogram", "--tomogram", action="extend", nargs="+", metavar="MRC")
    add_parameter(star, ImportStarJob, "tomo_name", "--tomo-name", action="extend", nargs="+", metavar="TSID")
    add_parameter(star, ImportStarJob, "voxel_size", "--voxel-size", type=positive_number, metavar="Å")
    add_parameter(star, ImportStarJob, "pixel_size", "--pixel-size", type=positive_number, metavar="Å")
    add_parameter(star, ImportStarJob, "out", "--out", metavar="PATH")


STAR_DESCRIPTION = """\
Read a RELION 4 or RELION 5 particles STAR file (data_particles; RELION 5 when it has
rlnCenteredCoordinateX/Y/ZAngst) into one coordinate CSV per tomogram, for `deepict train3d --coords`,
`deepict evaluate` or `deepict export`.

Each row goes to the --tomogram whose tsId (its file name without extension, or the matching --tomo-name)
is its rlnTomoName; a name that matches no tomogram is refused. RELION 5's centred Å become 0-based
voxels as x = Å / voxel size + size / 2 (the tomogram's size and voxel size from its MRC header);
RELION 4's rlnCoordinateX/Y/Z (0-based, as Scipion's reliontomo and `deepict export` write them) are
pixels of rlnDetectorPixelSize, else of --pixel-size, else of the tomogram's voxels. Angles, classes
and scores (rlnAutopickFigureOfMerit) are kept. --out is a .csv file for one tomogram, otherwise a
folder receiving <tsId>.csv per tomogram. Prints a JSON summary on stdout.
"""

STAR_EPILOG = """\
examples:
  deepict import-star --star particles.star --tomogram TS_01.mrc TS_02.mrc --out picks/
  deepict import-star --star run_it025_data.star --tomogram tomo_bin4.mrc --tomo-name TS_01 --out TS_01.csv
"""


def output_files(out, runs) -> dict:
    """{run: CSV path}: ``out`` itself for one run given as a .csv file, else ``<out>/<run>.csv``."""
    if str(out).lower().endswith(".csv"):
        if len(runs) != 1:
            raise ParameterError(f"--out {out} is one CSV file but {len(runs)} runs were asked: give a folder.")
        return {runs[0]: Path(out)}
    return {run: Path(out) / f"{run}.csv" for run in runs}


def run(job: ImportPicksJob) -> int:
    from deepict.formats import copick
    from deepict.io import write_coordinates
    from deepict.io.outputs import FILE_OR_FOLDER, claimed_outputs
    if not (job.voxel_size and math.isfinite(job.voxel_size) and job.voxel_size > 0):
        raise ParameterError(f"--voxel-size must be a finite number > 0 Å, got {job.voxel_size}.")
    if len(set(job.run)) != len(job.run):
        raise ParameterError("A --run is given twice: list each run once.")
    targets = output_files(job.out, job.run)
    tables = {name: copick.read_picks(job.copick, name, job.object, job.user_id, job.session_id, job.voxel_size)
              for name in job.run}
    with claimed_outputs(("--out", job.out, FILE_OR_FOLDER), job=job):
        for name, table in tables.items():
            write_coordinates(targets[name], table)
    print(json.dumps({"files": [str(targets[name]) for name in job.run],
                      "particles": {name: len(table) for name, table in tables.items()},
                      "voxel_size": job.voxel_size}, indent=2))
    return 0


def run_star(job: ImportStarJob) -> int:
    from deepict.formats import TomogramInfo, particles_star_format, read_exported
    from deepict.io import write_coordinates
    from deepict.io.outputs import FILE_OR_FOLDER, claimed_outputs
    tomograms = [TomogramInfo.from_volume(path, name=name, voxel_size=job.voxel_size)
                 for path, name in zip(job.tomogram, tomogram_names(job.tomo_name, job.tomogram))]
    if len({t.name for t in tomograms}) != len(tomograms):
        raise ParameterError("Two tomograms have the same tsId: name them apart with --tomo-name.")
    fmt = particles_star_format(job.star)
    tables = read_exported(fmt, job.star, tomograms, output_pixel_size=job.pixel_size)
    targets = output_files(job.out, [t.name for t in tomograms])
    with claimed_outputs(("--out", job.out, FILE_OR_FOLDER), job=job):
        for tomogram, table in zip(tomograms, tables):
            write_coordinates(targets[tomogram.name], table)
    print(json.dumps({"format": fmt, "files": [str(targets[t.name]) for t in tomograms],
                      "particles": {t.name: len(table) for t, table in zip(tomograms, tables)}}, indent=2))
    return 0
