"""Holding Ctrl-C and SIGTERM back while files that belong together are written.

A training checkpoint is two files: the best network (``OUT``) and the state to resume from
(``OUT.last.pt``). Each is written atomically, but a signal arriving between the two left a model that
``--resume`` could not continue. :func:`interrupts_held` makes such a group of writes one step: a signal
that arrives during it is delivered, to whatever handler was in place, as soon as the group is written.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

#: The signals a user or a job scheduler stops a run with.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
