"""The ``deepict`` command: one subcommand per processing step.

Subcommands live in :mod:`deepict_scipion.core.commands`, one module per family; each module has a
``register(subparsers)`` function that adds its parsers and sets ``handler`` (a function taking the
parsed arguments and returning an exit code). Errors a user can fix (:class:`DeepictError`) are
printed as one clear line and exit with status 2; anything else is a bug and shows a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands
from .errors import DeepictError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepict",
        description="DeePiCt for cryo-electron tomography: spectrum equalization, 2D compartment "
                    "segmentation, 3D particle picking and structure segmentation, evaluation and export. "
                    "Coordinates are 0-based voxels (x = fastest MRC axis) of the tomogram they refer to.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{module_info.name}").register(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except DeepictError as exc:
        print(f"deepict {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
