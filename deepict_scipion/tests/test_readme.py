"""Every ```python and ```bash block of README.md runs as written, as a new user would run it.

Each block runs in a fresh folder that holds the small synthetic data the README says it expects
(``tomos/``, ``masks/``, a published-format network), with the repository's ``.venv`` first on PATH,
no Scipion settings in the environment and an empty HOME: a block that fails fails its test, and
nothing may land in ``~/ScipionUserData``. The first block (``scripts/demo.sh``, ``scripts/test.sh``)
would rerun the whole suite and the full demo, so its commands are checked to be what CI and
test_demo run instead.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deepict.io import CoordinateTable, write_coordinates, write_volume
from deepict.nn.networks import UNet3D
from deepict.synthetic import PhantomConfig, make_phantom
from deepict_scipion.headless import TOMOGRAPHY_VIEW, project_folder

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(python|bash)\n(.*?)^```", re.M | re.S)
BLOCK_TIMEOUT_S = 1200
#: Small tomograms: the 3D default patch (48) and the 2D default tile (128) fit.
SHAPE_ZYX = (64, 128, 128)
VOXEL_SIZE = 13.48
#: The published DeePiCt ribosome network's layout (IF4, D2, BN), as `deepict import-model` reads it.
PUBLISHED_NAME = "full_vpp_ribo_model_IF4_D2_BN.pth"


#: The comment right above a block that needs a running SLURM: the queue tests (tests/cluster) run it, not this file.
QUEUE_MARKER = "<!-- deepict queue script:"
QUEUE_TESTS = Path(__file__).parent / "cluster" / "test_queue_slurm.py"


def needs_queue(text, start):
    """Whether the block starting at ``start`` of ``text`` (the README's) follows :data:`QUEUE_MARKER`."""
    before = text[:start].rstrip().splitlines()
    return bool(before) and before[-1].startswith(QUEUE_MARKER)


def readme_blocks(queue=False):
    """(language, code, line number) of every fenced python/bash block, in order: those that need SLURM with
    ``queue``, else the others."""
    text = README.read_text()
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)
            if needs_queue(text, m.start()) == queue]


BLOCKS = readme_blocks()


def commands(code):
    """The block's command lines, without comments and blank lines."""
    return [line.split("#")[0].strip() for line in code.splitlines() if line.split("#")[0].strip()]


def test_setup_block_runs_what_ci_and_test_demo_run():
    language, code, _ = BLOCKS[0]
    assert language == "bash" and commands(code) == ["bash scripts/demo.sh", "bash scripts/test.sh"], code
    # scripts/test.sh runs this test file among the others: CI runs it.
    assert re.search(r"^(exec )?bash scripts/test\.sh\b", (ROOT / ".ci" / "run").read_text(), re.M)
    assert "pytest" in (ROOT / "scripts" / "test.sh").read_text()
    # The suite is the engine's tests (beside the engine) and the plugin's.
    assert "engine/tests" in (ROOT / "scripts" / "test.sh").read_text()
    assert "deepict_scipion/tests" in (ROOT / "scripts" / "test.sh").read_text()
    # scripts/demo.sh runs the deepict-demo entry point; test_demo runs that same program, shortened.
    program = re.search(r'^exec \.venv/bin/(\S+) "\$@"$', (ROOT / "scripts" / "demo.sh").read_text(), re.M).group(1)
    assert f'"{program} = deepict_scipion.demo:main"' in (ROOT / "setup.py").read_text()
    test_demo = (Path(__file__).parent / "test_demo.py").read_text()
    assert re.search(rf'^DEMO = os\.path\.join\(os\.path\.dirname\(sys\.executable\), "{program}"\)$', test_demo, re.M)


def test_test_script_runs_only_the_test_files_it_is_given():
    """'bash scripts/test.sh FILE -x' (Tests and benchmarks) collects that file alone, not the suite beside it."""
    result = subprocess.run(["bash", "scripts/test.sh", "engine/tests/test_jobs.py", "--collect-only", "-q"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    files = {line.split(":")[0] for line in result.stdout.splitlines() if re.match(r"^\S+\.py: \d+$", line)}
    assert files and files <= {"engine/tests/test_jobs.py", "tests/test_jobs.py"}, result.stdout[-2000:]


#: Top-level folders of the repository: a README path that starts with one of them names a file of ours.
REPOSITORY_FOLDERS = ("deepict_scipion", "engine", "scripts", "benchmarks", ".ci")


def _has_files(path):
    """A file, or a folder holding a file other than Python's caches (a moved package leaves those behind)."""
    return path.is_file() or any(p.is_file() for p in path.rglob("*") if "__pycache__" not in p.parts)


def test_blocks_that_need_slurm_are_run_by_the_queue_tests():
    """A block left out here for want of a scheduler runs in the queue tests (scripts/test-cluster.sh)."""
    assert readme_blocks(queue=True), "the README's queue script is gone: see Running on a cluster"
    assert "readme_blocks(queue=True)" in QUEUE_TESTS.read_text(), f"{QUEUE_TESTS.name} does not run them"


def test_readme_names_paths_that_exist():
    text = README.read_text()
    named = {token for token in re.findall(r"`([^`\s]+)`", text) if token.split("/")[0] in REPOSITORY_FOLDERS}
    assert named  # the README shows the layout
    missing = sorted(token for token in named if not any(_has_files(p) for p in ROOT.glob(token.rstrip("/"))))
    assert not missing, f"README.md names paths that are not in the repository: {missing}"


def test_readme_runs_modules_that_exist():
    """Every ``python -m MODULE`` of the README (prose included) names a module Python can run."""
    modules = set(re.findall(r"python3? -m ([A-Za-z_][\w.]*)", README.read_text()))
    assert "deepict" in {m.split(".")[0] for m in modules}  # the engine's command, as the protocols run it
    for module in modules:
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"README.md runs python -m {module}, which does not exist"
        if spec.submodule_search_locations:  # a package runs its __main__
            assert importlib.util.find_spec(f"{module}.__main__") is not None, f"python -m {module}: no __main__"


def test_readme_quotes_the_rules_the_code_follows():
    """Rules the README states as numbers are the code's constants: changing one fails here until the README is
    changed with it (the GUI paragraph once kept a threshold shift the code had left)."""
    from deepict.conventions import ROTATED_THRESHOLD_SHIFT
    from deepict.infer.clusters import NEARLY_ALL_FRACTION
    from deepict.train.config import DEFAULT_EPOCHS, RARE_PARTICLE_EPOCHS, RARE_PARTICLES_PER_TOMOGRAM
    text = " ".join(README.read_text().split())
    assert f"a segmentation covering more than {100 * NEARLY_ALL_FRACTION:g} % of what was segmented" in text
    assert f"which also lowers the calibrated threshold by {ROTATED_THRESHOLD_SHIFT:g})" in text
    assert f"a calibrated threshold is taken {ROTATED_THRESHOLD_SHIFT:g} lower" in text
    assert f"| {DEFAULT_EPOCHS} ({RARE_PARTICLE_EPOCHS} for a rare particle), 25 |" in text
    assert (f"{DEFAULT_EPOCHS} epochs, or {RARE_PARTICLE_EPOCHS} when a class has fewer than "
            f"{RARE_PARTICLES_PER_TOMOGRAM} annotated particles per training tomogram") in text
    assert (f"the training chooses: {DEFAULT_EPOCHS}, or {RARE_PARTICLE_EPOCHS} for a rare particle (fewer than "
            f"{RARE_PARTICLES_PER_TOMOGRAM} annotated per training tomogram") in text
    from deepict_scipion.cluster import memory_request_mb
    assert f"928 x 928 x 464 tomogram peaks at 2.1 GB, so it asks for {memory_request_mb((928, 928, 464))} MB" in text


def main_parameters():
    """{first cell: default cell} of the README's *Main parameters (3D)* table."""
    section = README.read_text().split("## Main parameters (3D)", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in section.splitlines() if line.startswith("| `")]
    return {cells[0].strip(): cells[1].strip() for cells in rows}


def test_main_parameters_say_the_defaults_of_the_command_line_and_the_forms():
    """The table's defaults are the engine's, which the forms take: a form that defaulted otherwise (class 'ribosome',
    radius 100 Å) or lacked a field (--margin) fails here until the table, the form and the command line agree."""
    from deepict.conventions import DEFAULT_CLASS_NAMES_TEXT
    from deepict.infer.options import InferenceOptions
    from deepict.jobs import Train3DJob
    from deepict.parameters import default_of
    from deepict_scipion.protocols import ProtDeepictPick, ProtDeepictSegment3D, ProtDeepictTrain3D
    table = main_parameters()
    inference = InferenceOptions()
    window = next(value for key, value in table.items() if key.startswith("`--window`, `--margin`"))
    assert window == f"{inference.window}, {inference.margin}"
    for protocolClass in (ProtDeepictPick, ProtDeepictSegment3D):
        form = protocolClass()
        assert (form.window.get(), form.margin.get()) == (inference.window, inference.margin), protocolClass
    radius = next(value for key, value in table.items() if key.startswith("`--radius`"))
    assert radius.startswith("— (required") and default_of(Train3DJob, "radius") is None
    train = ProtDeepictTrain3D()
    assert not train.particleRadii.get()
    names = next(value for key, value in table.items() if key.startswith("`--class-name`"))
    assert names.startswith(DEFAULT_CLASS_NAMES_TEXT) and not train.classNames.get()
    helps = {command: subprocess.run([sys.executable, "-m", "deepict", command, "--help"], capture_output=True,
                                     text=True, check=True).stdout for command in ("pick", "train3d")}
    assert f"(default {inference.margin})" in " ".join(helps["pick"].split())
    assert DEFAULT_CLASS_NAMES_TEXT in " ".join(helps["train3d"].split())


def _write_tomogram(name, seed, tomos, masks):
    phantom = make_phantom(PhantomConfig(shape_zyx=SHAPE_ZYX, n_ribosomes=12, n_fas=3, n_distractors=10, seed=seed))
    write_volume(tomos / f"{name}.mrc", phantom.tomogram, VOXEL_SIZE)
    ribosomes = phantom.coords["ribosome"]
    write_coordinates(tomos / f"{name}.csv", CoordinateTable(ribosomes, {}, VOXEL_SIZE))
    np.savetxt(tomos / f"{name}.txt", ribosomes, fmt="%.2f")  # what Scipion's coordinate import reads
    for mask in ("membrane", "cytosol"):
        write_volume(masks / f"{name}_{mask}.mrc", phantom.masks[mask], VOXEL_SIZE)


@pytest.fixture(scope="module")
def readme_data(tmp_path_factory):
    """The files the README's blocks name: tomos/{A,B,T}.{mrc,csv,txt}, masks/*, a published network."""
    folder = tmp_path_factory.mktemp("readme_data")
    tomos, masks = folder / "tomos", folder / "masks"
    tomos.mkdir()
    masks.mkdir()
    for seed, name in enumerate(("A", "B", "T")):
        _write_tomogram(name, seed, tomos, masks)
    torch.manual_seed(0)
    network = UNet3D(depth=2, initial_features=4, batch_norm=True)
    torch.save({"model_state_dict": network.state_dict(), "epoch": 1}, folder / PUBLISHED_NAME)
    return folder


def fresh_user_environment(home, activated=True):
    """The tests' environment as a new user has it: no Scipion settings; ``activated``: the .venv's programs
    first on PATH (the shell blocks' ``deepict``), else not on it at all (``.venv/bin/python script.py``)."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SCIPION_")}
    environment["HOME"] = str(home)
    venv = os.path.dirname(sys.executable)
    others = [part for part in environment.get("PATH", "").split(os.pathsep) if part and part != venv]
    environment["PATH"] = os.pathsep.join(([venv] if activated else []) + others)
    return environment


def run_block(language, code, folder, home):
    """A python block as ``.venv/bin/python`` runs it, the venv not activated (a block that ran 'deepict' by
    name failed so); a shell block in the activated venv, as the README's commands assume."""
    program = [sys.executable, "-c", code] if language == "python" else ["bash", "-e", "-o", "pipefail", "-c", code]
    return subprocess.run(program, cwd=folder, env=fresh_user_environment(home, activated=language != "python"),
                          capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)


def protocol_errors(folder):
    """The end of each Scipion protocol's error log under ``folder`` (a failed block names only the command)."""
    return "".join(f"\n--- {log}:\n" + log.read_text(errors="replace")[-2000:]
                   for log in sorted(folder.rglob("Runs/*/logs/run.stderr")) if log.stat().st_size)


@pytest.mark.parametrize("language, code, line", BLOCKS[1:],
                         ids=[f"line{line}_{language}" for language, _, line in BLOCKS[1:]])
def test_readme_block_runs_as_written(language, code, line, readme_data, tmp_path):
    folder, home = tmp_path / "work", tmp_path / "home"
    shutil.copytree(readme_data, folder)
    home.mkdir()
    result = run_block(language, code, folder, home)
    assert result.returncode == 0, (f"README.md block at line {line} failed:\n" + result.stdout[-3000:] + "\n"
                                    + result.stderr[-5000:] + protocol_errors(folder))
    # Scipion's settings and projects stay where the block put them: nothing in ~/ScipionUserData.
    written = [str(path.relative_to(home)) for path in home.rglob("*")]
    assert not [path for path in written if "scipion" in path.lower()], written
    if "scipion_environment(" in code:
        root = re.search(r'scipion_environment\("([^"]+)"\)', code).group(1)
        name = re.search(r'create_project\("([^"]+)"\)', code).group(1)
        path = project_folder(folder / root, name)
        assert (Path(path) / "project.sqlite").is_file()
        # The project opens in the GUI where the DeePiCt protocols are.
        import pyworkflow as pw
        from pyworkflow.project import Project
        project = Project(pw.Config.getDomain(), path)
        project.load(chdir=False)
        assert project.getProtocolView() == TOMOGRAPHY_VIEW
        project.closeMapper()
