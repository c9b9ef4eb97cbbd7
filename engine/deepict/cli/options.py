"""What the subcommand modules of the ``deepict`` command line share: one subcommand per job class,
options built from the job's parameters, ``--job FILE``, argument types and the ``--device`` /
``--threads`` / ``--precision`` options of the torch commands.

Every subcommand runs the same way: its options (or its ``--job`` file) give a job
(:mod:`deepict.jobs`), and the subcommand's ``run(job)`` does the step. An option's default, help
and choices are those of its job parameter; the option sets the parameter at its path (its
``dest``, e.g. ``training.epochs``).
"""

from __future__ import annotations

import argparse
import copy
import functools
import math
from dataclasses import MISSING

from deepict.cpu import limit_threads
from deepict.errors import ParameterError
from deepict.job_warnings import recording_warnings
from deepict.jobs import device_path, read_job
from deepict.parameters import (choices_of, default_of, field_default, has_default, help_of, nested_class,
                                parameter_fields)

JOB_HELP = ("run the job in this file (JSON, as the Scipion protocols write it: see deepict.jobs) instead of taking "
            "the options below; give either --job or options, not both")
#: Actions whose argparse default must stay None (they add to it).
_ACCUMULATING = ("append", "extend")
#: Actions of options that take no value.
_FLAGS = ("store_true", "store_false")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_number(text: str) -> float:
    """A voxel or pixel size: a finite number above 0 (``nan``, ``inf`` and 0 are refused before anything runs)."""
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, not {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def tomogram_names(names, tomograms) -> list:
    """The ``--tomo-name`` of each tomogram (None: named by its file), refused unless one per tomogram or none."""
    names = list(names or [None] * len(tomograms))
    if len(names) != len(tomograms):
        raise ParameterError(f"{len(names)} --tomo-name value(s) for {len(tomograms)} tomogram(s); give one name "
                             "per tomogram or none.")
    return names


def add_command(subparsers, job_class: type, run, to_job=None, **parser_options) -> argparse.ArgumentParser:
    """The subcommand of ``job_class``: its options or its ``--job`` file give a job for ``run(job)``.

    ``to_job(args)`` builds the job from the options when they do not map one to one to its
    parameters (default: :func:`job_from_options`).
    """
    parser = subparsers.add_parser(job_class.step, **parser_options)
    parser.add_argument("--job", metavar="JOB.json", help=JOB_HELP)
    to_job = to_job or functools.partial(job_from_options, job_class)
    parser.set_defaults(handler=functools.partial(_run_command, job_class, run, to_job))
    return parser


def _run_command(job_class: type, run, to_job, args) -> int:
    if not args.job:
        return run(to_job(args))
    job = read_job(args.job, job_class)  # a job file refused here ran nothing: no warnings file beside it
    # The program that wrote the job file reads the run's warnings beside it (:mod:`deepict.job_warnings`).
    with recording_warnings(args.job):
        return run(job)


def add_parameter(parser, job_class: type, path: str, *flags, **options) -> argparse.Action:
    """Add the option ``flags`` that sets the job parameter at ``path``.

    Its default, help and choices are the parameter's unless given in ``options``; a parameter
    without a default is a required option.
    """
    default = default_of(job_class, path)
    if default is MISSING:
        options.setdefault("required", True)
    elif options.get("action") not in _ACCUMULATING:
        options.setdefault("default", default)
    options.setdefault("help", help_of(job_class, path))
    if choices_of(job_class, path) is not None:
        options.setdefault("choices", choices_of(job_class, path))
    elif options.get("action") not in _FLAGS:
        options.setdefault("metavar", flags[0].lstrip("-").replace("-", "_").upper())  # not the dest's path
    return parser.add_argument(*flags, dest=path, **options)


def job_from_options(job_class: type, args, prefix: str = "", **given):
    """The job the parsed options ``args`` describe; ``given``: values of top-level parameters set otherwise.

    An option left out (``None``) keeps its parameter's default.
    """
    values = {}
    for field in parameter_fields(job_class):
        path = prefix + field.name
        inner = nested_class(job_class, field)
        if field.name in given:
            values[field.name] = given[field.name]
        elif inner is not None:
            values[field.name] = job_from_options(inner, args, path + ".")
        elif hasattr(args, path):
            value = getattr(args, path)
            if value is None and has_default(field) and field_default(field) is not None:
                continue
            values[field.name] = copy.deepcopy(value)
    return job_class(**values)


def add_device_options(parser, job_class: type) -> None:
    """``--device``, ``--threads`` and ``--precision`` of a command that runs a network."""
    add_parameter(parser, job_class, device_path(job_class), "--device")
    add_parameter(parser, job_class, "threads", "--threads", type=positive_int, metavar="N")
    add_parameter(parser, job_class, "precision", "--precision")


def apply_precision(job) -> None:
    """Run this process's networks in the precision of ``job`` and print it with the device.

    Resolved on the job's device before any input is read, so that a precision the device cannot
    run (fp16 on a CPU) is refused at once. Imports torch: call it in a handler, before
    :func:`apply_threads` (choosing the CPU device sets torch's thread count).
    """
    from deepict.nn.devices import select_device
    from deepict.nn.precision import resolve_precision, use_precision

    device = select_device(_job_device(job))
    precision = resolve_precision(job.precision, device)
    use_precision(job.precision)
    chosen = " (auto)" if precision.name != job.precision else ""
    print(f"deepict {job.step}: device {device}, precision {precision.name}{chosen}", flush=True)


def _job_device(job) -> str:
    value = job
    for name in device_path(type(job)).split("."):
        value = getattr(value, name)
    return value


def apply_threads(threads) -> None:
    """Use ``threads`` CPU threads for the rest of the step: torch's pool, the FFTs, and every later choice of
    the CPU device (imports torch: call it in a handler)."""
    if threads:
        import torch
        limit_threads(threads)
        torch.set_num_threads(threads)
