"""``deepict import-picks``: picks of a copick project to our coordinate tables."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from deepict.errors import ParameterError
from deepict.jobs import ImportPicksJob
from deepict.cli.options import add_command, add_parameter, positive_number

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
