"""Holding Ctrl-C and SIGTERM back while files that belong together are written.

A training checkpoint is two files: the best network (``OUT``) and the state to resume from
(``OUT.last.pt``). Each is written atomically, but a signal arriving between the two left a model that
``--resume`` could not continue. :func:`interrupts_held` makes such a group of writes one step: a signal
that arrives during it is delivered, to whatever handler was in place, as soon as the group is written.

An interrupted step whose outputs so far are worth keeping (a training's best epoch, which ``--resume``
continues) says so on the interruption (:func:`note_kept`), and the command line prints that instead of
"outputs not yet complete were not written".
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

#: The signals a user or a job scheduler stops a run with.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: The attribute of an interruption that says what the interrupted step kept (:func:`note_kept`).
_KEPT = "deepict_kept"


def interruption(exc: BaseException) -> KeyboardInterrupt | None:
    """The interrupt behind ``exc``: itself, or the cause of the ``SystemError`` that a C function (``os.fspath``
    inside ``numpy.fromfile``, say) reports when the signal handler raises while it runs; else ``None``."""
    if isinstance(exc, SystemError):
        exc = exc.__cause__ or exc.__context__
    return exc if isinstance(exc, KeyboardInterrupt) else None


def note_kept(exc: BaseException, kept: str) -> None:
    """Say on the interruption behind ``exc`` (if it is one) what the interrupted step kept, and how to go on."""
    interrupt = interruption(exc)
    if interrupt is not None:
        setattr(interrupt, _KEPT, kept)


def kept_output(interrupt: KeyboardInterrupt) -> str | None:
    """What the interrupted step kept (:func:`note_kept`), or ``None``."""
    return getattr(interrupt, _KEPT, None)


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Delay :data:`STOP_SIGNALS` until the block ends, then deliver the first one that came.

    Only the main thread receives Python signal handlers, so elsewhere the block runs unguarded; a handler
    installed from C (``signal.getsignal`` gives ``None``) is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = [signum for signum in STOP_SIGNALS if signal.getsignal(signum) is not None]
    previous = {signum: signal.signal(signum, lambda signum, frame: caught.append(signum)) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if caught:
            signal.raise_signal(caught[0])
