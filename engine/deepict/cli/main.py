"""The ``deepict`` command: one subcommand per processing step.

Subcommands live in the modules named by ``COMMAND_MODULES``, one per family; each module has a
``register(subparsers)`` function that adds one parser per job class of :mod:`deepict.jobs`
(:func:`.options.add_command`): its options, or the job file given with ``--job``, become the job
that the subcommand's ``run(job)`` executes, returning an exit code. Errors a user can fix (:class:`DeepictError`) and
errors of the file system (a full disk, a vanished folder: ``OSError``) are printed as one clear
line and exit with status 2. Ctrl-C and SIGTERM (what job schedulers send) interrupt the run
cleanly: the atomic writers remove their temporary files, one line is printed, and the exit status
is 128 + the signal number. A closed standard output (``deepict evaluate ... | head``) ends quietly.
Anything else is a bug and shows a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from deepict import __version__
from deepict.errors import DeepictError, Interrupted
from deepict.signals import interruption, kept_output


#: Modules of :mod:`deepict.cli` that register subcommands (in this order in ``deepict --help``).
COMMAND_MODULES = ("compartments", "context", "evaluate", "export", "import_picks", "model_info", "particles3d",
                   "ensemble", "spectrum", "filaments")


class OneLineErrorParser(argparse.ArgumentParser):
    """A usage error is one line pointing at the help, not the whole usage block (subcommands inherit this).

    A subcommand given ``--job FILE`` takes no other option: the file holds them all, so the
    options it would otherwise require are not asked for.
    """

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def parse_known_args(self, args=None, namespace=None):
        if args is None or "--job" not in self._option_string_actions or not _names_job(args):
            return super().parse_known_args(args, namespace)
        if _without_job(args) and not {"-h", "--help"} & set(args):
            self.error("--job FILE holds every parameter of the step: give either --job or options, not both")
        required = [action for action in self._actions if action.required]
        groups = [group for group in self._mutually_exclusive_groups if group.required]
        try:
            for item in required + groups:
                item.required = False
            return super().parse_known_args(args, namespace)
        finally:
            for item in required + groups:
                item.required = True


def _names_job(args) -> bool:
    return any(arg == "--job" or arg.startswith("--job=") for arg in args)


def _without_job(args) -> list:
    """The command-line words other than ``--job FILE``."""
    args = list(args)
    for index, arg in enumerate(args):
        if arg.startswith("--job="):
            return args[:index] + args[index + 1:]
        if arg == "--job":
            return args[:index] + args[index + 2:]
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="deepict",
        description="DeePiCt for cryo-electron tomography: spectrum equalization, 2D compartment "
                    "segmentation, 3D particle picking and structure segmentation, evaluation and export. "
                    "Coordinates are 0-based voxels (x = fastest MRC axis) of the tomogram they refer to.")
    parser.add_argument("--version", action="version", version=f"deepict {__version__}",
                        help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       help="the step to run ('deepict COMMAND --help' explains it)")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"deepict.cli.{name}").register(subparsers)
    return parser


def _interrupt(signum, frame) -> None:
    raise Interrupted(signum)


def _os_error_line(exc: OSError) -> str:
    """``OSError`` as one line: the file(s), what errno means and what to do."""
    from deepict.io.outputs import CHECK_THE_PATH, WRITE_ERROR_ADVICE  # numpy: not at every start-up

    files = " -> ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
    meaning = os.strerror(exc.errno) if exc.errno else str(exc)
    advice = WRITE_ERROR_ADVICE.get(exc.errno, CHECK_THE_PATH)
    return f"{files + ': ' if files else ''}{meaning}: {advice}"


def _silence_stdout() -> None:
    """After a broken pipe, later writes (and the flush at exit) must not raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


#: torch is an extra of the engine (a site chooses its build); the steps that run a network need it.
NO_TORCH = ("this step runs a network and needs torch, which is not installed in {python}. Install it there "
            "(pip install torch, or the engine with its extra: pip install 'deepict-engine[torch]'); from Scipion, "
            "make the engine's environment with 'scipion3 installb deepict', or set DEEPICT_PYTHON to a python "
            "that has torch.")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # Signal handlers can only be set in the main thread (an embedding program may call main elsewhere).
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
    try:
        code = int(args.handler(args) or 0)
        sys.stdout.flush()
        return code
    except DeepictError as exc:
        print(f"deepict {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        print(f"deepict {args.command}: error: {NO_TORCH.format(python=sys.executable)}", file=sys.stderr)
        return 2
    except OSError as exc:
        if isinstance(exc, BrokenPipeError) and exc.filename is None:
            _silence_stdout()
            return 128 + signal.SIGPIPE
        print(f"deepict {args.command}: error: {_os_error_line(exc)}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, SystemError) as exc:
        interrupt = interruption(exc)
        if interrupt is None:
            raise
        signum = interrupt.signum if isinstance(interrupt, Interrupted) else signal.SIGINT
        print(f"deepict {args.command}: interrupted by {signal.Signals(signum).name}; "
              f"{kept_output(interrupt) or 'outputs not yet complete were not written'}", file=sys.stderr)
        return 128 + signum
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
