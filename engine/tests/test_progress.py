"""Long steps report progress: a line at least every few seconds with the count, percentage, elapsed time and ETA."""

from __future__ import annotations

import re

import pytest

from deepict.progress import Progress, format_duration
from tiny_world import noise_tomogram, pick_small, untrained_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROGRESS_LINE = re.compile(r"predicting T\.mrc: (\d+)/(\d+) windows \(\d+%\), .* elapsed, ETA \d+")


class FakeClock:
    """Seconds advanced by hand: the reporter's timing without sleeping."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_reports_count_percent_elapsed_and_eta_at_most_every_interval():
    clock, lines = FakeClock(), []
    progress = Progress("predicting", 10, "windows", lines.append, every=3.0, clock=clock)
    for _ in range(10):
        clock.now += 1.0
        progress.advance()
    # The first unit gives an early estimate, then a line every 3 s, and the end.
    assert lines == ["predicting: 1/10 windows (10%), 1 s elapsed, ETA 9 s",
                     "predicting: 4/10 windows (40%), 4 s elapsed, ETA 6 s",
                     "predicting: 7/10 windows (70%), 7 s elapsed, ETA 3 s",
                     "predicting: 10/10 windows (100%) in 10 s"]


def test_a_step_shorter_than_the_interval_stays_silent_without_a_first_line():
    clock, lines = FakeClock(), []
    progress = Progress("epoch 1/3", 5, "batches", lines.append, every=3.0, first_line=False, clock=clock)
    for _ in range(5):
        clock.now += 0.5
        progress.advance()
    assert lines == []
    slow = Progress("epoch 2/3", 4, "batches", lines.append, every=3.0, first_line=False, clock=clock)
    for _ in range(4):
        clock.now += 2.0
        slow.advance()
    assert lines == ["epoch 2/3: 2/4 batches (50%), 4 s elapsed, ETA 4 s", "epoch 2/3: 4/4 batches (100%) in 8 s"]


def test_an_eta_of_units_of_different_cost_counts_their_work():
    """Counted in units, a huge first piece (91 s) made the ETA 91 s times the 9 pieces left: 13 min 39 s, for
    nine small pieces that took 9 s."""
    clock, lines = FakeClock(), []
    costs = [91] + [1] * 9
    progress = Progress("tracing", len(costs), "pieces", lines.append, every=3.0, clock=clock, work=sum(costs))
    for cost in costs:
        clock.now += cost  # a piece takes time in proportion to its work
        progress.advance(work=cost)
    assert lines == ["tracing: 1/10 pieces (10%), 1 min 31 s elapsed, ETA 9 s",
                     "tracing: 4/10 pieces (40%), 1 min 34 s elapsed, ETA 6 s",
                     "tracing: 7/10 pieces (70%), 1 min 37 s elapsed, ETA 3 s",
                     "tracing: 10/10 pieces (100%) in 1 min 40 s"]


def test_format_duration():
    assert [format_duration(s) for s in (0.4, 42, 185, 7620)] == ["0 s", "42 s", "3 min 05 s", "2 h 07 min"]


def test_pick_prints_progress_lines_with_eta(tmp_path, capsys):
    out = pick_small(untrained_model(tmp_path / "ours.pt"), noise_tomogram(tmp_path / "T.mrc"), capsys)
    lines = [PROGRESS_LINE.search(line) for line in out.splitlines()]
    counts = [(int(m[1]), int(m[2])) for m in lines if m]
    assert counts and counts[0][1] == 2 * 4 * 4  # 24 x 40 x 40 voxels: boxes of 16 inside it, every 8
    assert "predicting T.mrc: 32/32 windows (100%)" in out  # and the end of the step
    assert "spectrum" not in out  # no published-network warning for our own model




def test_shares_of_a_unit_add_up_to_whole_units_and_show_one_decimal():
    """Predictions report a box's share after each of its passes (members × views): the count shows the
    fraction, and shares that add up to the total finish the step."""
    clock, lines = FakeClock(), []
    progress = Progress("predicting", 2, "windows", lines.append, every=3.0, clock=clock)
    for _ in range(6):
        clock.now += 2.0
        progress.advance(1 / 3)
    assert lines == ["predicting: 0.3/2 windows (17%), 2 s elapsed, ETA 10 s",
                     "predicting: 1/2 windows (50%), 6 s elapsed, ETA 6 s",
                     "predicting: 1.7/2 windows (83%), 10 s elapsed, ETA 2 s",
                     "predicting: 2/2 windows (100%) in 12 s"]
