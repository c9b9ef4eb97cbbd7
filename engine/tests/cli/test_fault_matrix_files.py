"""Fault matrix of the files the ``deepict`` commands read and write (issues 9 and 15).

Every case runs a real command (``cli.main``, or a child process where a signal or another user is
needed) on small generated files. A refusal must exit with status 2 and print one line naming the
file and the fix, with no traceback and without torch's advice to load a file unsafely; the output
must not appear and no temporary file may be left beside it. The other cases check the right result.
Cases are grouped by category: ``crash`` (was an exception), ``silent`` (was a wrong result without a
word), ``unclear`` (was a misleading message), ``litter`` (left temporary files), ``umask`` (outputs
were 0600) and ``passes`` (refused or read correctly already: guards against regressions).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch

from deepict import io
from deepict.io import atomic_path, read_coordinates, read_volume, volume_writer, write_volume
from deepict.nn.model_files import model_file_problem, read_model_info
from tiny_world import TINY_TRAINING, make_tiny_world, run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOXEL = 13.48
INFERENCE = ["--window", "32", "--margin", "4", "--batch-size", "4", "--device", "cpu"]
#: What an output file holds before a run that must not change it.
EARLIER_RESULT = b"the result of an earlier run\n"
#: Words of torch's error text that must never reach the user (it advises loading without weights_only).
TORCH_ADVICE = ("weights_only", "Weights only load failed", "will likely succeed")


# --------------------------------------------------------------------------------------------
# Shared inputs: a tiny phantom, its picks and a model trained on it
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_tiny_world(tmp_path_factory.mktemp("world"))


def hidden_leftovers(folder: Path) -> list:
    return sorted(p.name for p in Path(folder).rglob(".*")
                  if p.name.endswith(io.TEMPORARY_SUFFIX) or p.name.startswith(io.SCRATCH_PREFIX))


def assert_refused(code, err, culprit, words, folder=None):
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("warning")]
    assert code == 2, err
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert "Traceback" not in err and not any(advice in err for advice in TORCH_ADVICE), err
    assert Path(culprit).name in lines[0], f"the message does not name {Path(culprit).name}: {lines[0]}"
    for word in words:
        assert word.lower() in lines[0].lower(), f"{word!r} missing from: {lines[0]}"
    if folder is not None:
        assert not hidden_leftovers(folder), hidden_leftovers(folder)


# --------------------------------------------------------------------------------------------
# File makers
# --------------------------------------------------------------------------------------------

def text_file(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def csv_rows(xyz, header="x,y,z", extra=None) -> str:
    lines = [header] + [",".join(f"{v:g}" for v in row) + ("" if extra is None else f",{extra[i]}")
                        for i, row in enumerate(xyz)]
    return "\n".join(lines) + "\n"


def mrc_file(path: Path, data, voxel_size=VOXEL) -> Path:
    with mrcfile.new(str(path), overwrite=True) as mrc:
        mrc.set_data(np.asarray(data))
        mrc.voxel_size = voxel_size
    return path


def edited_model(world, path: Path, edit) -> Path:
    payload = torch.load(world.model, map_location="cpu", weights_only=True)
    edit(payload)
    torch.save(payload, path)
    return path


class _RunsCode:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def malicious(path: Path, writer=torch.save) -> Path:
    payload = {"format": "deepict_scipion-model", "format_version": 1,
               "info": _RunsCode(path.with_name("pwned")), "state_dict": {}}
    if writer is pickle.dump:
        with open(path, "wb") as handle:
            pickle.dump(payload, handle)
    else:
        writer(payload, path)
    return path


def tomogram_like(world, path: Path, **header) -> Path:
    data = read_volume(world.tomo).data
    return mrc_file(path, np.asarray(data), header.get("voxel_size", VOXEL))


# --------------------------------------------------------------------------------------------
# Commands on one culprit file (the others are good)
# --------------------------------------------------------------------------------------------

def evaluate_gt(world, tmp, gt):
    return ["evaluate", "--pred", world.coords, "--gt", gt, "--json", tmp / "scores.json"], [tmp / "scores.json"]


def evaluate_pred(world, tmp, pred):
    return ["evaluate", "--pred", pred, "--gt", world.coords, "--json", tmp / "scores.json"], [tmp / "scores.json"]


def export_coords(world, tmp, coords):
    return ["export", "--coords", coords, "--tomogram", world.tomo, "--format", "relion4",
            "--out", tmp / "particles.star"], [tmp / "particles.star"]


def export_tomogram(world, tmp, tomogram):
    return ["export", "--coords", world.coords, "--tomogram", tomogram, "--format", "relion4",
            "--out", tmp / "particles.star"], [tmp / "particles.star"]


def train_coords(world, tmp, coords):
    return ["train3d", "--tomograms", world.tomo, "--coords", coords, "--out", tmp / "m.pt"] + TINY_TRAINING, \
        [tmp / "m.pt"]


def train_tomogram(world, tmp, tomogram):
    return ["train3d", "--tomograms", tomogram, "--coords", world.coords, "--out", tmp / "m.pt"] + TINY_TRAINING, \
        [tmp / "m.pt"]


def pick_model(world, tmp, model):
    return ["pick", "--model", model, "--tomogram", world.tomo, "--out", tmp / "picks.csv"] + INFERENCE, \
        [tmp / "picks.csv"]


def pick_tomogram(world, tmp, tomogram):
    return ["pick", "--model", world.model, "--tomogram", tomogram, "--out", tmp / "picks.csv",
            "--probability-map", tmp / "probability.mrc"] + INFERENCE, [tmp / "picks.csv", tmp / "probability.mrc"]


def model_info(world, tmp, model):
    return ["model-info", "--model", model, "--json", tmp / "info.json"], [tmp / "info.json"]


def import_model(world, tmp, checkpoint):
    return ["import-model", checkpoint, "--out", tmp / "imported.pt", "--voxel-size", VOXEL], [tmp / "imported.pt"]


def equalize_reference(world, tmp, reference):
    return ["equalize", "--tomogram", world.tomo, "--reference", reference, "--out", tmp / "equalized.mrc"], \
        [tmp / "equalized.mrc"]


def evaluate_mask(world, tmp, mask):
    good = mrc_file(tmp / "good_mask.mrc", np.ones((4, 6, 8), np.int8))
    return ["evaluate", "--pred-mask", good, "--gt-mask", mask], []


def evaluate_probability(world, tmp, probability):
    good = mrc_file(tmp / "good_mask.mrc", np.ones((4, 6, 8), np.int8))
    return ["evaluate", "--probability-map", probability, "--gt-mask", good], []


# --------------------------------------------------------------------------------------------
# Culprit files
# --------------------------------------------------------------------------------------------

def latin1_csv(world, tmp):
    return text_file(tmp / "latin1.csv", "# picked at 13.48 Å\n" + csv_rows(world.truth), "latin-1")


def volume_as_csv(world, tmp):
    return mrc_file(tmp / "picks.csv", np.zeros((4, 6, 8), np.float32))


def voxel_size_with_unit(world, tmp):
    return text_file(tmp / "unit.csv", "# voxel_size_angstrom: 13.48A\n" + csv_rows(world.truth))


def model_without_kind(world, tmp):
    return edited_model(world, tmp / "nokind.pt", lambda payload: payload["info"].pop("kind"))


def model_without_info(world, tmp):
    return edited_model(world, tmp / "noinfo.pt", lambda payload: payload.pop("info"))


def model_without_voxel_size(world, tmp):
    return edited_model(world, tmp / "novoxel.pt", lambda payload: payload["info"].update(voxel_size=None))


def anisotropic_tomogram(world, tmp):
    return tomogram_like(world, tmp / "aniso.mrc", voxel_size=(VOXEL, VOXEL, 2 * VOXEL))


def tomogram_without_voxel_size(world, tmp):
    return tomogram_like(world, tmp / "novoxel.mrc", voxel_size=0)


def one_slice_volume(world, tmp):
    with mrcfile.new(str(tmp / "image.mrc"), overwrite=True) as mrc:
        mrc.set_data(np.random.default_rng(0).normal(size=(1, 48, 48)).astype(np.float32))
        mrc.header.ispg = 1  # a volume of one slice (an image would be refused as 2D data already)
        mrc.voxel_size = VOXEL
    return tmp / "image.mrc"


def conflicting_duplicates(world, tmp):
    xyz = np.concatenate([world.truth, world.truth[:1]])
    return text_file(tmp / "conflict.csv", csv_rows(xyz, "x,y,z,score", [0.9] * len(world.truth) + [0.1]))


def non_numeric_score(world, tmp):
    return text_file(tmp / "score.csv", csv_rows(world.truth, "x,y,z,score", ["high"] * len(world.truth)))


def fractional_class(world, tmp):
    return text_file(tmp / "class.csv", csv_rows(world.truth, "x,y,z,class", [1.5] * len(world.truth)))


def training_state(world, tmp):
    return world.state


def training_state_renamed(world, tmp):
    renamed = tmp / "resume-me.bin"
    renamed.write_bytes(world.state.read_bytes())
    return renamed


def random_bytes(world, tmp):
    (tmp / "random.pth").write_bytes(np.random.default_rng(1).bytes(4096))
    return tmp / "random.pth"


def malicious_torch_file(world, tmp):
    return malicious(tmp / "evil.pth")


def malicious_plain_pickle(world, tmp):
    return malicious(tmp / "evil_pickle.pth", pickle.dump)


def truncated_mrc(world, tmp):
    data = world.tomo.read_bytes()
    (tmp / "truncated.mrc").write_bytes(data[:len(data) // 2])
    return tmp / "truncated.mrc"


def text_as_mrc(world, tmp):
    return text_file(tmp / "notes.mrc", "this is not a volume\n" * 20)


def complex_mrc(world, tmp):
    return mrc_file(tmp / "complex.mrc", np.ones((4, 6, 8), np.complex64))


def nan_tomogram(world, tmp):
    data = np.array(read_volume(world.tomo).data)
    data[3, 4, 5] = np.nan
    return mrc_file(tmp / "nan.mrc", data)


def inf_map(world, tmp):
    data = np.zeros((4, 6, 8), np.float32)
    data[1, 1, 1] = np.inf
    return mrc_file(tmp / "inf.mrc", data)


def binned_tomogram(world, tmp):
    return tomogram_like(world, tmp / "bin8.mrc", voxel_size=5 * VOXEL)  # beyond the 4x rescaled on the fly


def coords_at_other_voxel_size(world, tmp):
    return text_file(tmp / "bin2.csv", f"# voxel_size_angstrom: {2 * VOXEL}\n" + csv_rows(world.truth / 2))


def missing(world, tmp):
    return tmp / "gone.mrc"


def damaged_gzip(world, tmp):
    (tmp / "picks.csv.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    return tmp / "picks.csv.gz"


def ragged_csv(world, tmp):
    return text_file(tmp / "ragged.csv", "x,y,z\n1,2,3\n4,5\n")


def model_without_weights(world, tmp):
    return edited_model(world, tmp / "noweights.pt", lambda payload: payload.pop("state_dict"))


def model_from_the_future(world, tmp):
    return edited_model(world, tmp / "future.pt", lambda payload: payload.update(format_version=99))


def truncated_model(world, tmp):
    data = world.model.read_bytes()
    (tmp / "half.pt").write_bytes(data[:len(data) // 2])
    return tmp / "half.pt"


def empty_file(world, tmp):
    (tmp / "empty.pt").write_bytes(b"")
    return tmp / "empty.pt"


def folder_instead_of_file(world, tmp):
    (tmp / "folder.mrc").mkdir()
    return tmp / "folder.mrc"


def latin1_spectrum(world, tmp):
    return text_file(tmp / "spectrum.tsv", "# measured at 13.48 Å\nfrequency_per_angstrom\tamplitude\n", "latin-1")


def model_2d(world, tmp):
    return edited_model(world, tmp / "as2d.pt", lambda payload: payload["info"].update(kind="2d"))


#: (category, culprit maker, command maker, words the one error line must hold)
REFUSALS = [
    ("crash", latin1_csv, evaluate_gt, ["UTF-8", "iconv"]),
    ("crash", latin1_csv, export_coords, ["UTF-8", "iconv"]),
    ("crash", latin1_csv, train_coords, ["UTF-8", "iconv"]),
    ("crash", volume_as_csv, evaluate_pred, ["MRC volume", "CSV"]),
    ("crash", volume_as_csv, export_coords, ["MRC volume", "CSV"]),
    ("crash", voxel_size_with_unit, evaluate_gt, ["13.48A", "plain positive number"]),
    ("crash", voxel_size_with_unit, train_coords, ["13.48A", "plain positive number"]),
    ("crash", voxel_size_with_unit, export_coords, ["13.48A", "plain positive number"]),
    ("crash", model_without_kind, pick_model, ["lacks kind", "again"]),
    ("crash", model_without_kind, model_info, ["lacks kind", "again"]),
    ("crash", model_without_kind, import_model, ["lacks kind", "again"]),
    ("crash", model_without_info, pick_model, ["no model description", "again"]),
    ("crash", model_without_info, model_info, ["no model description", "again"]),
    ("crash", model_without_info, import_model, ["no model description", "again"]),
    ("crash", damaged_gzip, evaluate_gt, ["decompress"]),
    ("crash", model_without_weights, pick_model, ["weights", "again"]),
    ("silent", anisotropic_tomogram, pick_tomogram, ["13.48, 13.48, 26.96", "resample"]),
    ("silent", anisotropic_tomogram, train_tomogram, ["13.48, 13.48, 26.96", "resample"]),
    ("silent", anisotropic_tomogram, export_tomogram, ["13.48, 13.48, 26.96", "resample"]),
    ("silent", tomogram_without_voxel_size, train_tomogram, ["no voxel size", "--voxel-size"]),
    ("silent", tomogram_without_voxel_size, pick_tomogram, ["no voxel size", "--voxel-size"]),
    ("silent", model_without_voxel_size, pick_model, ["records no voxel size", "--ignore-voxel-size"]),
    ("silent", one_slice_volume, pick_tomogram, ["2D image", "3D tomogram"]),
    ("silent", one_slice_volume, train_tomogram, ["2D image", "3D tomogram"]),
    ("silent", conflicting_duplicates, evaluate_pred, ["same position", "one row per particle"]),
    ("silent", one_slice_volume, equalize_reference, ["2D image", "3D tomogram"]),
    ("unclear", non_numeric_score, evaluate_pred, ["score", "number"]),
    ("unclear", non_numeric_score, export_coords, ["score", "number"]),
    ("unclear", fractional_class, export_coords, ["class", "whole numbers"]),
    ("unclear", training_state, pick_model, ["training state", "ribo.pt"]),
    ("unclear", training_state, model_info, ["training state", "ribo.pt"]),
    ("unclear", training_state, import_model, ["training state", "ribo.pt"]),
    ("unclear", training_state_renamed, pick_model, ["training state", "--out"]),
    ("unclear", random_bytes, import_model, ["not a torch file", "trusted source", "written by 'deepict train3d'"]),
    ("unclear", random_bytes, pick_model, ["not a torch file", "import-model"]),
    ("unclear", malicious_torch_file, import_model, ["posix.system", "arbitrary code"]),
    ("unclear", malicious_plain_pickle, import_model, ["posix.system", "arbitrary code"]),
    ("unclear", malicious_torch_file, pick_model, ["posix.system", "arbitrary code"]),
    ("unclear", malicious_torch_file, model_info, ["posix.system", "arbitrary code"]),
    ("unclear", truncated_model, pick_model, ["damaged torch file", "train3d"]),
    ("unclear", empty_file, import_model, ["empty", "trusted source"]),
    ("unclear", folder_instead_of_file, pick_tomogram, ["folder", "itself"]),
    ("unclear", folder_instead_of_file, model_info, ["folder", "itself"]),
    ("passes", truncated_mrc, pick_tomogram, ["corrupt or truncated"]),
    ("passes", truncated_mrc, evaluate_mask, ["corrupt or truncated"]),
    ("passes", text_as_mrc, evaluate_mask, ["a text file (a coordinate table?), not an MRC volume"]),
    ("passes", complex_mrc, evaluate_mask, ["unsupported MRC data type"]),
    ("passes", nan_tomogram, pick_tomogram, ["NaN", "replace the bad voxels"]),
    ("passes", nan_tomogram, train_tomogram, ["NaN", "replace the bad voxels"]),
    ("passes", inf_map, evaluate_probability, ["infinite"]),
    ("passes", binned_tomogram, pick_tomogram, ["67.4", "more than the 4x", "binvol"]),
    ("passes", coords_at_other_voxel_size, train_coords, ["26.96", "scale the coordinates"]),
    ("passes", missing, pick_tomogram, ["not found"]),
    ("passes", missing, evaluate_gt, ["not found"]),
    ("passes", ragged_csv, evaluate_gt, ["number of fields"]),
    ("passes", tomogram_without_voxel_size, export_tomogram, ["voxel size", "--voxel-size"]),
    ("passes", model_2d, pick_model, ["2D model", "train3d"]),
    ("passes", model_from_the_future, pick_model, ["newer", "update"]),
    ("passes", latin1_spectrum, equalize_reference, ["not a readable text spectrum", "spectrum TSV"]),
]


@pytest.mark.parametrize("category, culprit, command, words", REFUSALS,
                         ids=[f"{c}-{f.__name__}-{m.__name__}" for c, f, m, _ in REFUSALS])
def test_refused_with_one_line_naming_the_file_and_the_fix(world, tmp_path, capsys, category, culprit, command,
                                                           words):
    path = culprit(world, tmp_path)
    argv, outputs = command(world, tmp_path, path)
    for output in outputs:  # the result of an earlier run: a refused run must leave it as it was
        output.write_bytes(EARLIER_RESULT)
    code, _, err = run(capsys, *argv)
    assert_refused(code, err, path, words, folder=tmp_path)
    for output in outputs:
        assert output.read_bytes() == EARLIER_RESULT, f"the refused run changed {output.name}"
    assert not (tmp_path / "pwned").exists(), "a pickled command ran"


# --------------------------------------------------------------------------------------------
# Read correctly (the right result)
# --------------------------------------------------------------------------------------------

def particle_scores(capsys, pred, gt) -> tuple[dict, str]:
    code, out, err = run(capsys, "evaluate", "--pred", pred, "--gt", gt)
    assert code == 0, err
    return json.loads(out)["particles"], err


@pytest.mark.parametrize("variant", ["bom", "quoted", "bom_quoted"])
def test_unclear_bom_and_quoted_headers_are_read(world, tmp_path, capsys, variant):
    header = '"x","y","z"' if "quoted" in variant else "x,y,z"
    text = ("\ufeff" if "bom" in variant else "") + csv_rows(world.truth, header)
    table = text_file(tmp_path / f"{variant}.csv", text)
    scores, _ = particle_scores(capsys, table, world.coords)
    assert scores["n_pred"] == len(world.truth) and scores["recall"] == 1.0
    code, out, err = run(capsys, *export_coords(world, tmp_path, table)[0])
    assert code == 0 and json.loads(out)["particles"] == len(world.truth), err


def test_unclear_spectrum_table_with_a_bom_is_read(world, tmp_path, capsys):
    spectrum = tmp_path / "spectrum.tsv"
    code, _, err = run(capsys, "spectrum", "--tomogram", world.tomo, "--out", spectrum)
    assert code == 0, err
    text_file(spectrum, "\ufeff" + spectrum.read_text())
    code, _, err = run(capsys, *equalize_reference(world, tmp_path, spectrum)[0])
    assert code == 0 and (tmp_path / "equalized.mrc").is_file(), err


def test_silent_repeated_rows_count_once_in_every_command(world, tmp_path, capsys):
    """Issue 15: a ground truth with every row twice gave recall 0.25 for 0.5; export wrote 12 of 6."""
    half = world.truth[: len(world.truth) // 2]
    doubled = text_file(tmp_path / "doubled.csv", csv_rows(np.concatenate([world.truth, world.truth])))
    pred = text_file(tmp_path / "half.csv", csv_rows(half))
    scores, err = particle_scores(capsys, pred, doubled)
    assert scores["n_true"] == len(world.truth) and scores["recall"] == pytest.approx(0.5)
    warning = [line for line in err.splitlines() if line.startswith("warning")]
    assert len(warning) == 1 and "doubled.csv" in warning[0] and f"{len(world.truth)} repeated row" in warning[0]
    code, out, _ = run(capsys, *export_coords(world, tmp_path, doubled)[0])
    assert code == 0 and json.loads(out)["particles"] == len(world.truth)


def test_silent_header_without_voxel_size_is_used_with_the_given_one(world, tmp_path, capsys):
    tomogram = tomogram_without_voxel_size(world, tmp_path)
    model = tmp_path / "given.pt"
    code, _, err = run(capsys, "train3d", "--tomograms", tomogram, "--coords", world.coords, "--out", model,
                       "--voxel-size", VOXEL, *TINY_TRAINING)
    assert code == 0, err
    assert read_model_info(model).voxel_size == pytest.approx(VOXEL)
    code, _, err = run(capsys, "pick", "--model", model, "--tomogram", tomogram, "--out", tmp_path / "p.csv",
                       "--voxel-size", VOXEL, *INFERENCE)
    assert code == 0, err
    assert read_coordinates(tmp_path / "p.csv").voxel_size == pytest.approx(VOXEL)


def test_silent_model_without_voxel_size_applies_only_when_asked(world, tmp_path, capsys):
    model = model_without_voxel_size(world, tmp_path)
    code, _, err = run(capsys, "pick", "--model", model, "--tomogram", world.tomo, "--out", tmp_path / "p.csv",
                       "--ignore-voxel-size", *INFERENCE)
    assert code == 0 and (tmp_path / "p.csv").is_file(), err


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.float16, np.float32])
def test_passes_every_valid_mrc_mode_is_read(tmp_path, capsys, dtype):
    mask = np.zeros((4, 6, 8), dtype)
    mask[1:3, 2:4, 3:6] = 1
    path = mrc_file(tmp_path / f"mask_{np.dtype(dtype).name}.mrc", mask)
    code, out, err = run(capsys, "evaluate", "--pred-mask", path, "--gt-mask", path)
    assert code == 0 and json.loads(out)["voxels"]["dice"] == 1.0, err


def test_cheap_model_check_for_forms(world, tmp_path):
    """model_file_problem (for the Scipion import form) says the same as the command, without loading weights."""
    assert model_file_problem(world.model) is None
    for culprit, words in [(training_state, ["training state", "ribo.pt"]), (random_bytes, ["not a torch file"]),
                           (malicious_torch_file, ["arbitrary code"]), (model_without_kind, ["lacks kind"]),
                           (missing, ["not found"]), (model_2d, ["2D model"])]:
        path = culprit(world, tmp_path)
        problem = model_file_problem(path)
        assert problem and path.name in problem and all(w in problem for w in words), problem
        assert not any(advice in problem for advice in TORCH_ADVICE)
    assert not (tmp_path / "pwned").exists()


# --------------------------------------------------------------------------------------------
# A model file the user cannot read (as root: the command runs as nobody)
# --------------------------------------------------------------------------------------------

@pytest.fixture
def open_folder():
    """A folder other users can enter (pytest's temporary folders are closed to them)."""
    folder = Path(tempfile.mkdtemp(prefix="deepict-open-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_unclear_unreadable_model_says_permission_denied(world, open_folder):
    folder = open_folder
    model = folder / "private.pt"
    model.write_bytes(world.model.read_bytes())
    model.chmod(0)
    command = [sys.executable, "-m", "deepict.cli.main", "model-info", "--model", str(model)]
    if os.geteuid() == 0:  # root reads every file: run the command as nobody
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv to become another user")
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + command
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=str(folder),
                          env=dict(os.environ, HOME=str(folder)))
    assert_refused(done.returncode, done.stderr, model, ["permission denied", "chmod"])


# --------------------------------------------------------------------------------------------
# Litter: temporaries are removed on every exit, and leftovers of killed runs at the next run
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit, OSError])
def test_litter_atomic_writers_remove_their_temporary_on_any_exception(tmp_path, interrupt):
    with pytest.raises(interrupt):
        with atomic_path(tmp_path / "model.pt") as tmp:
            tmp.write_bytes(b"half")
            raise interrupt()
    with pytest.raises(interrupt):
        with volume_writer(tmp_path / "map.mrc", (4, 6, 8), np.float32, VOXEL) as write:
            write(0, np.zeros((2, 6, 8)))
            raise interrupt()
    assert not list(tmp_path.iterdir())


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def owner(pid) -> str:
    return f"{io.files._host()}-{pid}"


def test_litter_leftovers_of_killed_runs_are_removed_at_the_next_run(world, tmp_path, capsys):
    pid = dead_pid()
    stale_part = tmp_path / f".picks.csv.{owner(pid)}.0badc0de.part"
    stale_scratch = tmp_path / f".deepict-scratch.{owner(pid)}.abc123"
    stale_part.write_bytes(b"x" * 1000)
    stale_other = tmp_path / f".scores.json.{owner(pid)}.1234abcd.part"  # of another output in that folder
    stale_other.write_bytes(b"{")
    (stale_scratch / "probability.mrc").parent.mkdir()
    (stale_scratch / "probability.mrc").write_bytes(b"x" * 1000)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # a run still going on (this host) and one of another host keep theirs
        alive = tmp_path / f".picks.csv.{owner(sleeper.pid)}.00c0ffee.part"
        foreign = tmp_path / f".deepict-scratch.otherhost-{pid}.abc123"
        alive.write_bytes(b"busy")
        foreign.mkdir()
        code, _, err = run(capsys, *pick_model(world, tmp_path, world.model)[0])
        assert code == 0, err
        assert not stale_part.exists() and not stale_scratch.exists() and not stale_other.exists()
        assert alive.exists() and foreign.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def start_pick(world, folder: Path) -> subprocess.Popen:
    big = folder / "big.mrc"
    write_volume(big, np.random.default_rng(0).normal(size=(64, 160, 160)).astype(np.float32), VOXEL)
    return subprocess.Popen([sys.executable, "-m", "deepict.cli.main", "pick", "--model", str(world.model),
                             "--tomogram", str(big), "--out", str(folder / "picks.csv"), "--probability-map",
                             str(folder / "probability.mrc")] + INFERENCE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))


def wait_for_temporary(child: subprocess.Popen, folder: Path, pattern: str) -> None:
    deadline = time.time() + 120
    while not list(folder.glob(pattern)):
        assert child.poll() is None, f"pick ended before writing: {child.communicate()}"
        assert time.time() < deadline, "pick wrote no temporary file in 2 minutes"
        time.sleep(0.05)


def test_litter_sigkill_during_pick_is_cleaned_by_the_next_run(world, tmp_path, capsys):
    (tmp_path / "picks.csv").write_bytes(EARLIER_RESULT)
    child = start_pick(world, tmp_path)
    wait_for_temporary(child, tmp_path, f".probability.mrc.*{io.TEMPORARY_SUFFIX}")
    child.kill()
    child.communicate()
    assert hidden_leftovers(tmp_path), "SIGKILL left nothing: the test did not hit a write"
    assert (tmp_path / "picks.csv").read_bytes() == EARLIER_RESULT and not (tmp_path / "probability.mrc").exists()
    code, _, err = run(capsys, "pick", "--model", world.model, "--tomogram", world.tomo, "--out",
                       tmp_path / "picks.csv", "--probability-map", tmp_path / "probability.mrc", *INFERENCE)
    assert code == 0, err
    assert not hidden_leftovers(tmp_path)


def test_litter_sigterm_during_pick_leaves_nothing(world, tmp_path):
    child = start_pick(world, tmp_path)
    wait_for_temporary(child, tmp_path, f".probability.mrc.*{io.TEMPORARY_SUFFIX}")
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode != 0 and "Traceback" not in err, err
    assert not hidden_leftovers(tmp_path)
    assert not (tmp_path / "picks.csv").exists() and not (tmp_path / "probability.mrc").exists()


# --------------------------------------------------------------------------------------------
# Umask: every kind of output gets the permissions of a new file (issue 9, defect 6)
# --------------------------------------------------------------------------------------------

@pytest.fixture
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


@pytest.mark.parametrize("umask", [0o022, 0o027], indirect=True, ids=["022", "027"])
def test_umask_every_output_gets_the_permissions_of_a_new_file(world, tmp_path, capsys, umask):
    out = tmp_path / "out"
    steps = [
        ["train3d", "--tomograms", world.tomo, "--coords", world.coords, "--out", out / "model.pt", *TINY_TRAINING],
        ["pick", "--model", out / "model.pt", "--tomogram", world.tomo, "--out", out / "picks.csv",
         "--probability-map", out / "probability.mrc", *INFERENCE],
        ["segment3d", "--model", out / "model.pt", "--tomogram", world.tomo, "--out", out / "mask.mrc", *INFERENCE],
        ["import-model", out / "model.pt", "--out", out / "imported.pt"],
        ["model-info", "--model", out / "model.pt", "--json", out / "info.json"],
        ["export", "--coords", world.coords, "--tomogram", world.tomo, "--format", "relion4", "--out",
         out / "particles.star"],
        ["export", "--coords", world.coords, "--tomogram", world.tomo, "--format", "warp", "--out", out / "warp"],
        ["spectrum", "--tomogram", world.tomo, "--out", out / "spectrum.tsv"],
        ["equalize", "--tomogram", world.tomo, "--reference", out / "spectrum.tsv", "--out", out / "equalized.mrc"],
        ["evaluate", "--pred", out / "picks.csv", "--gt", world.coords, "--json", out / "scores.json",
         "--curve", out / "curve.csv"],
    ]
    for argv in steps:
        code, _, err = run(capsys, *argv)
        assert code == 0, f"{argv[0]}: {err}"
    written = sorted(p for p in out.rglob("*"))
    expected_files = 0o666 & ~umask
    wrong = {p.name: oct(p.stat().st_mode & 0o777) for p in written
             if (p.stat().st_mode & 0o777) != (0o777 & ~umask if p.is_dir() else expected_files)}
    assert not wrong, f"umask {umask:03o}: {wrong}"
    kinds = {p.suffix for p in written if p.is_file()}
    assert {".pt", ".csv", ".mrc", ".star", ".tsv", ".json"} <= kinds, kinds
    assert any(p.name != "model.pt" and p.name.startswith("model.") and p.suffix == ".pt" for p in written), \
        "the training state is missing"
    assert not hidden_leftovers(out)
