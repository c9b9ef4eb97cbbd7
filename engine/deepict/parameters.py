"""A parameter is declared once: its default, its help text and its choices live in its dataclass field.

The ``deepict`` options and the Scipion forms read them from there (:func:`default_of`,
:func:`option_help`, :func:`choices_of`). A parameter is named by its path in a job:
``"epochs"``, or ``"training.epochs"`` for a field of a nested dataclass (``"epochs"`` finds it
too, when only one parameter of the job has that name). Help texts may say
``%(default)s`` (argparse's notation); :func:`option_help` fills it in for the forms.

Plain Python (no numpy, no torch): the Scipion plugin imports it.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import MISSING

HELP = "help"
CHOICES = "choices"
#: Metadata flag of a field the step computes from its inputs (not a value of its job).
DERIVED = "derived"

#: Where a network runs; every step with a ``device`` parameter runs one.
DEVICE_HELP = ("where the network runs: auto (a CUDA GPU when one is visible, else the CPU), cpu, cuda or "
               "cuda:N (default: %(default)s)")
#: CPU threads of torch in a step that runs a network.
TORCH_THREADS_HELP = "CPU threads for torch (default: every core this process may use)"
#: Numeric precision of a step that runs a network (:mod:`deepict.nn.precision` resolves ``auto``).
PRECISION_AUTO = "auto"
PRECISIONS = (PRECISION_AUTO, "fp32", "bf16", "fp16")
PRECISION_HELP = ("numeric precision of the network: auto = bf16 on a CUDA GPU that supports it (else fp16) and on "
                  "CPUs with native bf16 (AMX or AVX-512 BF16), fp32 on other CPUs; fp32, bf16 or fp16 (GPU only) "
                  "force one. Reduced precision runs the convolutions of the larger networks up to about twice as "
                  "fast where the hardware supports it; weights and saved models stay fp32 (default %(default)s)")


def parameter(default=MISSING, *, help: str, factory=MISSING, choices=None, derived: bool = False):
    """A dataclass field with its help text (and its allowed values, if only some are).

    Give ``default`` for an immutable default, ``factory`` for a list or dict, neither for a
    required value. ``derived``: the step computes the value itself (from other parameters).
    """
    metadata = {HELP: help, DERIVED: derived}
    if choices is not None:
        metadata[CHOICES] = tuple(choices)
    return dataclasses.field(default=default, default_factory=factory, metadata=metadata)


def device_parameter():
    """The ``device`` parameter of a step that runs a network."""
    return parameter("auto", help=DEVICE_HELP)


def precision_parameter():
    """The ``precision`` parameter of a step that runs a network."""
    return parameter(PRECISION_AUTO, choices=PRECISIONS, help=PRECISION_HELP)


def threads_parameter():
    """The ``threads`` parameter (torch's CPU threads) of a step that runs a network."""
    return parameter(None, help=TORCH_THREADS_HELP)


def is_derived(field: dataclasses.Field) -> bool:
    return bool(field.metadata.get(DERIVED))


def has_default(field: dataclasses.Field) -> bool:
    return field.default is not MISSING or field.default_factory is not MISSING


def field_default(field: dataclasses.Field):
    """The default of ``field`` (a fresh object for a factory); ``MISSING`` when the value is required."""
    return field.default_factory() if field.default_factory is not MISSING else field.default


@functools.cache
def type_hints(cls: type) -> dict:
    """The field types of ``cls`` (evaluating the annotations is slow: once per class)."""
    return typing.get_type_hints(cls)


def nested_class(owner: type, field: dataclasses.Field):
    """The dataclass a field holds (a group of parameters), or ``None`` for a plain value."""
    kind = type_hints(owner)[field.name]
    return kind if dataclasses.is_dataclass(kind) else None


def parameter_fields(cls: type) -> list:
    """The fields of ``cls`` that a job gives (derived ones excluded)."""
    return [f for f in dataclasses.fields(cls) if f.init and not is_derived(f)]


@functools.cache
def parameter_paths(cls: type, prefix: str = "") -> tuple:
    """Paths of every plain parameter of ``cls``, nested groups flattened (``training.epochs``)."""
    paths = ()
    for field in parameter_fields(cls):
        inner = nested_class(cls, field)
        paths += parameter_paths(inner, f"{prefix}{field.name}.") if inner else (prefix + field.name,)
    return paths


def full_path(cls: type, path: str) -> str:
    """``path`` itself, or the one parameter path of ``cls`` it ends (``"epochs"`` -> ``"training.epochs"``)."""
    paths = parameter_paths(cls)
    if path in paths or "." in path:
        return path
    matches = [full for full in paths if full.endswith("." + path)]
    if len(matches) != 1:
        raise KeyError(f"{cls.__name__} has {'several parameters' if matches else 'no parameter'} '{path}'"
                       + (f": {', '.join(matches)}" if matches else ""))
    return matches[0]


def field_at(cls: type, path: str) -> dataclasses.Field:
    """The field of ``cls`` at ``path`` (``"training.epochs"``, or ``"epochs"`` when only one parameter is so named)."""
    *groups, name = full_path(cls, path).split(".")
    for group in groups:
        cls = nested_class(cls, _field(cls, group))
    return _field(cls, name)


def _field(cls: type, name: str) -> dataclasses.Field:
    for field in dataclasses.fields(cls):
        if field.name == name:
            return field
    raise KeyError(f"{cls.__name__} has no parameter '{name}'")


def default_of(cls: type, path: str):
    """The default of the parameter at ``path`` (``MISSING`` when it must be given).

    A group's own default (a job's ``training`` group) decides the defaults of its fields.
    """
    *groups, name = full_path(cls, path).split(".")
    value = None
    for depth, group in enumerate(groups):
        field = _field(cls, group)
        value = field_default(field) if depth == 0 else getattr(value, group)
        cls = nested_class(cls, field)
    if value is not None and hasattr(value, name):
        return getattr(value, name)
    return field_default(_field(cls, name))


def help_of(cls: type, path: str) -> str:
    """The help text of the parameter at ``path`` as declared (argparse's ``%(default)s`` notation)."""
    return field_at(cls, path).metadata[HELP]


def option_help(cls: type, path: str) -> str:
    """The help text of the parameter at ``path`` with its default filled in (for the Scipion forms)."""
    default = default_of(cls, path)
    return help_of(cls, path) % {"default": None if default is MISSING else default}


def choices_of(cls: type, path: str):
    """The allowed values of the parameter at ``path`` (``None``: any value of its type)."""
    return field_at(cls, path).metadata.get(CHOICES)
