"""Progress lines for long steps: ``label: done/total unit (percent), elapsed, ETA``.

A step that runs for more than a few seconds reports through :class:`Progress`, which writes at most
one line every ``every`` seconds (and one when the step ends, if it wrote any). The lines go through
the step's ``log`` (by default standard output, flushed), which is what a Scipion protocol's run log
shows: protocols run ``deepict`` through ``runJob``, whose output is the run log.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

#: Seconds between two progress lines of one step.
PROGRESS_INTERVAL_SECONDS = 3.0


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    seconds = int(round(max(seconds, 0.0)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def print_line(message: str) -> None:
    print(message, file=sys.stdout, flush=True)


class Progress:
    """Count the work units of one step and report the count, the elapsed time and the ETA.

    ``first_line``: also report after the first unit (an early ETA for a step known to be long);
    without it, a step shorter than ``every`` seconds stays silent. ``clock`` is injectable for tests.

    ``work``: the step's total work in a unit of its own (voxels, points), for units of very different cost
    (mask pieces, filaments): each :meth:`advance` then says how much work it finished, and the ETA is the time
    the remaining work takes at the rate so far. Counted in units instead, one huge piece done first made the
    ETA its time multiplied by the number of pieces left, hours for a step that ended seconds later.
    """

    def __init__(self, label: str, total: int, unit: str = "", log: Callable[[str], None] | None = None,
                 every: float = PROGRESS_INTERVAL_SECONDS, first_line: bool = True,
                 clock: Callable[[], float] = time.monotonic, work: float | None = None):
        self.label, self.total, self.unit = label, max(int(total), 0), unit
        self.log = log or print_line
        self.every, self.first_line, self.clock = every, first_line, clock
        self.done = 0
        self.work_total = float(self.total if work is None else work)
        self.work_done = 0.0
        self.started = self.last_line = clock()
        self.lines = 0

    def advance(self, count: float = 1, work: float | None = None) -> None:
        """``count`` more units done, which were ``work`` of the total work (default: ``count``); a share of a
        unit counts too (a box's share after each of its views)."""
        done = self.done + count
        if abs(done - round(done)) < 1e-6:  # shares that add up to whole units make exactly those units
            done = round(done)
        self.done = min(done, self.total) if self.total else done
        self.work_done += count if work is None else work
        now = self.clock()
        finished = self.total and self.done >= self.total
        if (finished and self.lines) or now - self.last_line >= self.every or (self.first_line and not self.lines):
            self.log(self.line(now))
            self.last_line = now
            self.lines += 1

    def line(self, now: float | None = None) -> str:
        elapsed = (self.clock() if now is None else now) - self.started
        unit = f" {self.unit}" if self.unit else ""
        done = str(int(self.done)) if self.done == int(self.done) else f"{self.done:.1f}"
        if not self.total:
            return f"{self.label}: {done}{unit}, {format_duration(elapsed)} elapsed"
        percent = 100.0 * self.done / self.total
        if self.done >= self.total:
            return f"{self.label}: {self.done}/{self.total}{unit} (100%) in {format_duration(elapsed)}"
        remaining = max(self.work_total - self.work_done, 0.0)
        eta = format_duration(elapsed / self.work_done * remaining) if self.work_done > 0 else "unknown"
        return (f"{self.label}: {done}/{self.total}{unit} ({percent:.0f}%), "
                f"{format_duration(elapsed)} elapsed, ETA {eta}")
