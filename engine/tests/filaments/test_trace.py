"""Filament tracing: straight, curved, hollow, crossing, touching, re-entering and empty masks, bad parameters."""

import numpy as np
import pytest

from deepict.errors import ParameterError
from deepict.filaments.joining import join_chains
from deepict.filaments.options import FilamentOptions
from deepict.filaments.scoring import score_trace
from deepict.filaments import trace as trace_module
from deepict.filaments.trace import trace_filaments
from deepict.orientations import angle_between_axes, tilt_psi_to_direction
from deepict.progress import Progress
from deepict.synthetic.filaments import FilamentSceneConfig, make_filament_scene

VOXEL = 10.0


def tube(shape_zyx, start_xyz, end_xyz, radius, inner=0.0):
    """A straight (hollow if ``inner``) tube between two points, flat ends, as a boolean mask."""
    z, y, x = np.indices(shape_zyx)
    points = np.stack([x, y, z], -1).astype(float)
    start, end = np.asarray(start_xyz, float), np.asarray(end_xyz, float)
    axis = (end - start) / np.linalg.norm(end - start)
    along = (points - start) @ axis
    distance = np.linalg.norm(points - start - along[..., None] * axis, axis=-1)
    return (along >= 0) & (along <= np.linalg.norm(end - start)) & (distance <= radius) & (distance >= inner)


def trace(mask, spacing=30.0, **options):
    return trace_filaments(mask.copy(), VOXEL, FilamentOptions(spacing_angstrom=spacing, **options))


def test_straight_tube_gives_one_evenly_spaced_filament_along_its_axis():
    mask = tube((32, 40, 80), (5, 20, 16), (74, 20, 16), 3)
    table = trace(mask)
    assert set(table.columns["filament_id"].tolist()) == {1}
    assert np.abs(table.xyz[:, 1:] - [20, 16]).max() < 0.75
    assert table.xyz[:, 0].min() < 7 and table.xyz[:, 0].max() > 72  # prolonged to the flat ends
    assert np.abs(np.diff(table.xyz[:, 0])) == pytest.approx(np.full(len(table) - 1, 3.0), abs=0.05)
    directions = tilt_psi_to_direction(table.columns["tilt"], table.columns["psi"])
    assert angle_between_axes(directions, [1, 0, 0]).max() < 2
    assert np.diff(table.columns["arc_length_angstrom"]) == pytest.approx(30.0, abs=0.5)
    assert not table.columns["rot"].any()


def test_hollow_tube_is_traced_on_its_axis_and_rot_steps():
    mask = tube((40, 40, 60), (3, 20, 20), (56, 24, 20), 9, inner=5)
    table = trace(mask, rot_step=360 / 13)
    assert set(table.columns["filament_id"].tolist()) == {1}
    expected_y = 20 + 4 * (table.xyz[:, 0] - 3) / 53
    assert np.abs(table.xyz[:, 1] - expected_y).max() < 1.0 and np.abs(table.xyz[:, 2] - 20).max() < 1.0
    assert table.columns["rot"][:3] == pytest.approx([0.0, 360 / 13, 720 / 13])


def test_empty_mask_gives_an_empty_table_with_the_columns():
    table = trace(np.zeros((20, 20, 20), bool))
    assert len(table) == 0
    assert {"rot", "tilt", "psi", "filament_id", "arc_length_angstrom"} <= set(table.columns)


def test_short_pieces_are_dropped_by_the_minimum_length_in_angstrom():
    mask = tube((20, 20, 60), (5, 10, 10), (25, 10, 10), 2)  # 200 Å long at 10 Å/voxel
    assert len(trace(mask, min_length_angstrom=150))
    assert len(trace(mask, min_length_angstrom=300)) == 0


@pytest.fixture(scope="module")
def scene():
    return make_filament_scene(FilamentSceneConfig(), image=False)


def test_scene_crossing_touching_and_reentering_filaments_stay_apart(scene):
    table = trace_filaments(scene.masks["filaments"].copy(), scene.voxel_size, FilamentOptions(spacing_angstrom=40))
    scores = score_trace(table, scene.centre_lines, 40 / scene.voxel_size)
    assert scores["traced_filaments"] == scores["true_filaments"] == 7  # the re-entering actin is two
    assert scores["shared_ids"] == 0
    assert scores["recall"] >= 0.9 and scores["precision"] >= 0.95
    assert scores["median_orientation_error_deg"] <= 10 and scores["spacing_error"] <= 0.05


def test_joining_takes_the_straight_continuation_not_the_crossing_arm():
    line = np.stack([np.arange(0.0, 20), np.zeros(20), np.zeros(20)], 1)
    continuation = line + [26.0, 0, 0]
    crossing = np.stack([23 + np.arange(1.0, 20) * 0.5, np.arange(1.0, 20) * 0.87, np.zeros(19)], 1)
    joined = join_chains([line, continuation, crossing], max_distance=10, max_angle=30)
    assert sorted(len(c) for c in joined) == [19, 40]


@pytest.mark.parametrize("options, message", [
    ({"spacing_angstrom": 5.0}, "smaller than a voxel"),
    ({"spacing_angstrom": 30.0, "join_angle": 120.0}, "--join-angle"),
    ({"spacing_angstrom": 30.0, "erosion_angstrom": -1.0}, "--erosion-angstrom")])
def test_bad_parameters_are_refused_with_the_fix(options, message):
    with pytest.raises(ParameterError, match=message):
        trace_filaments(np.zeros((8, 8, 8), bool), VOXEL, FilamentOptions(**options))


def test_every_stage_reports_its_progress():
    """Joining and smoothing ran for up to 42 s without a line on a big mask."""
    lines = []
    trace_filaments(tube((32, 40, 80), (5, 20, 16), (74, 20, 16), 3), 10.0, FilamentOptions(spacing_angstrom=30.0),
                    log=lines.append)
    assert any(line.startswith("joining 1 piece(s) of centre line") for line in lines), lines
    assert any(line.startswith("smoothing the filaments and prolonging them to the mask's ends") for line in lines)


class RecordedProgress(Progress):
    """A progress that keeps each advance's share of the work."""

    made: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.shares = []
        RecordedProgress.made.append(self)

    def advance(self, count=1, work=None):
        self.shares.append(work)
        super().advance(count, work)


def test_the_tracing_eta_weighs_a_huge_piece_by_its_work(monkeypatch):
    """The pieces were counted alike and before their work: after one huge piece the first ETA was its time
    multiplied by the pieces left (about 25 times the time they then took). Each piece now counts its box's
    voxels plus a fixed cost, once it is done: measured on a 2-core machine, the huge piece took about half of the
    tracing time, and its share of the work says so."""
    mask = np.zeros((70, 70, 1400), bool)
    mask[2:15, 44:57, :] = tube((13, 13, 1400), (4, 6, 6), (1395, 6, 6), 6)  # the first piece (lowest z, then y)
    small = tube((7, 17, 7), (3, 0, 3), (3, 16, 3), 3)
    for i in range(40):  # small pieces side by side, too far apart in their direction to be joined
        mask[37:44, 5:22, 7 + 12 * i:14 + 12 * i] = small
    RecordedProgress.made = []
    monkeypatch.setattr(trace_module, "Progress", RecordedProgress)
    trace_filaments(mask, VOXEL, FilamentOptions(spacing_angstrom=30.0), log=lambda line: None)
    tracing = next(p for p in RecordedProgress.made if p.label == "tracing mask pieces")
    assert len(tracing.shares) == 41 and sum(tracing.shares) == tracing.work_total
    # The ETA after the huge piece is its time x (work left / its work): under 3x, where counting pieces made it 40x.
    assert (tracing.work_total - tracing.shares[0]) / tracing.shares[0] < 3
