"""The install a new user runs (``scripts/setup.sh``): reproducible and not silent (issue 9, defects 7 and 11)."""

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "setup.sh"
CONSTRAINTS = ROOT / "constraints.txt"


def _pins():
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        name, _, version = line.strip().partition("==")
        if name and not name.startswith("#"):
            pins[name.lower().replace("_", "-")] = version
    return pins


def _installed_by_setup():
    """Package names that setup.sh asks pip for (torch is pinned on its own line, the plugin is editable)."""
    text = SETUP.read_text().replace("\\\n", " ")  # join continued lines
    names = set()
    for command in re.findall(r"^\s*pip_install (.*)$", text, flags=re.MULTILINE):
        names.update(word.lower() for word in command.split() if re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", word))
    return names


def test_setup_installs_every_package_at_its_pinned_version():
    text = SETUP.read_text()
    assert "-c constraints.txt" in text
    pins = _pins()
    requested = _installed_by_setup()
    assert {"scipion-pyworkflow", "scipion-em", "scipion-em-tomo", "scipion-em-reliontomo"} <= requested
    unpinned = sorted(name for name in requested if name not in pins)
    assert not unpinned, f"setup.sh installs {unpinned} without a pin in constraints.txt"
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+]*", version) for version in pins.values())


def test_the_environment_matches_the_pins():
    """The tests run against what constraints.txt says (a drifted venv would make the pins a lie)."""
    drifted = {}
    for name, version in _pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # e.g. a platform-specific dependency that this machine did not need
        if installed != version:
            drifted[name] = (installed, version)
    assert not drifted, f"installed vs pinned: {drifted}; rerun bash scripts/setup.sh"


def test_scipions_packages_find_pkg_resources():
    """pyworkflow, pwem and scipion-app read their versions with pkg_resources, which setuptools 81 dropped: the GUI
    printed "No module named 'pkg_resources'" for each at every start. setup.sh keeps setuptools below 81."""
    probe = subprocess.run([sys.executable, "-W", "ignore", "-c", "import pkg_resources"], capture_output=True,
                           text=True)
    assert probe.returncode == 0, probe.stderr


@pytest.mark.parametrize("line", [line for line in SETUP.read_text().splitlines() if "pip install" in line])
def test_setup_shows_pips_progress(line):
    """A fresh install takes minutes: pip's per-package lines stay visible (no -q)."""
    assert not re.search(r"\s-q\b", line), line


# ------------------------------- the engine's own environment (scipion3 installb deepict) ---------------------------

def _requirements(setup_py):
    """The install_requires and extras_require of a setup.py, as written (read with ast, not run)."""
    call = next(node for node in ast.walk(ast.parse(setup_py.read_text()))
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup")
    keywords = {k.arg: k.value for k in call.keywords}
    requires = [ast.unparse(v).strip("'\"f") for v in keywords["install_requires"].elts]
    extras = ast.literal_eval(keywords["extras_require"]) if "extras_require" in keywords else {}
    return requires, extras


def _names(requirements):
    return {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in requirements}


def test_scipions_python_needs_no_torch():
    """The plugin needs the engine without torch; the engine asks for torch only as an extra (the site
    chooses the build), so a Scipion Python without torch can hold both."""
    plugin, _ = _requirements(ROOT / "setup.py")
    engine, extras = _requirements(ROOT / "engine" / "setup.py")
    assert "torch" not in _names(plugin) and "deepict-engine" in _names(plugin)
    assert _names(engine) == {"numpy", "scipy", "mrcfile", "emtable", "scikit-image"}
    assert "torch" in _names(extras["torch"])


@pytest.fixture
def plugin(monkeypatch):
    """The Plugin class with its variables as a fresh site has them (nothing set); tests may change them."""
    from pwem import Domain
    plugin = Domain.getPlugins()["deepict_scipion"].Plugin  # registered: its variables are defined
    for name in ("DEEPICT_HOME", "DEEPICT_TORCH_BUILD", "DEEPICT_PYTHON", "DEEPICT_ENV_ACTIVATION"):
        assert name in plugin._vars, name  # defined, so `scipion3 config -p deepict_scipion` shows it
        monkeypatch.setitem(plugin._vars, name, plugin._vars[name])  # restored after the test
    return plugin


def _install_commands(plugin):
    """{target path: command} of the deepict package, from an Environment built the way `scipion3 installb` does."""
    from scipion.install.funcs import Environment
    env = Environment()
    env.setDefault(False)
    plugin.defineBinaries(env)
    from deepict import __version__
    target = env.getTarget(f"deepict-{__version__}")
    assert env.getTarget("deepict") is target and target.isDefault()  # `installb deepict`; installed with the plugin
    return {tuple(command._targets): command._cmd for command in target.getCommands()
            if isinstance(command._cmd, str)}, target


def test_installb_makes_the_environment_where_the_plugin_looks_for_it(plugin):
    assert not plugin.getVar("DEEPICT_PYTHON") and not plugin.getVar("DEEPICT_TORCH_BUILD")
    commands, target = _install_commands(plugin)
    # The environment lies in Scipion's EM folder, which DEEPICT_HOME names by default.
    from pwem import Config
    assert target.targetPath == plugin.getHome() == os.path.join(Config.EM_ROOT, target.getName())
    steps = [command for targets, command in commands.items()
             if targets and targets[0].startswith(target.targetPath + os.sep)]  # download and mkdir come first
    venv, torch_step, engine_step = steps
    assert f"{sys.executable} -m venv venv" in venv
    assert (plugin.getHome("venv", "bin", "python"),) in commands  # the python getEnginePython runs
    # The index's default build, of the release the tests passed with (setup.sh and constraints.txt say which).
    from deepict_scipion import TORCH_VERSION
    assert torch_step.endswith(f"pip install torch=={TORCH_VERSION} && touch TORCH_INSTALLED")
    assert f'pip_install "torch=={TORCH_VERSION}"' in SETUP.read_text()
    assert _pins()["torch"].split("+")[0] == TORCH_VERSION
    # This checkout: its own engine, editable, with the torch extra; then the engine must start.
    assert f"pip install -e {shlex.quote(str(ROOT / 'engine') + '[torch]')} &&" in engine_step
    assert "venv/bin/python -m deepict --version && touch ENGINE_INSTALLED" in engine_step
    assert all(step.startswith("env -u PYTHONPATH ") for step in steps)


def test_installb_takes_the_torch_build_and_the_released_engine(plugin, monkeypatch):
    import deepict_scipion
    from deepict import __version__
    plugin._vars["DEEPICT_TORCH_BUILD"] = "cu121"
    monkeypatch.setattr(deepict_scipion, "engineSource", lambda: None)  # a plugin installed from the index
    commands, _ = _install_commands(plugin)
    text = "\n".join(commands.values())
    assert "pip install --index-url https://download.pytorch.org/whl/cu121 torch==2.13.0 &&" in text
    assert f"pip install 'deepict-engine[torch]=={__version__}' &&" in text


def test_the_venv_step_runs(plugin, tmp_path):
    """The first step, run as Scipion runs it (a shell in the package folder); the others need the network."""
    commands, _ = _install_commands(plugin)
    venv = next(command for command in commands.values() if "-m venv" in command)
    folder = tmp_path / "package"
    folder.mkdir()
    subprocess.run(venv, shell=True, cwd=folder, check=True, timeout=300)
    assert (folder / "venv" / "bin" / "python").exists()
    probe = subprocess.run([str(folder / "venv" / "bin" / "python"), "-c", "import sys; print(sys.prefix)"],
                           capture_output=True, text=True, check=True)
    assert Path(probe.stdout.strip()) == folder / "venv"


def test_engine_python_in_each_setting(plugin, monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", "/scipion/site-packages")
    plugin._vars["DEEPICT_HOME"] = str(tmp_path / "deepict-home")
    quoted = shlex.quote(sys.executable)
    # Nothing installed, nothing set: Scipion's own Python (how CI runs), GPUs chosen by Scipion unless queued.
    assert plugin.getProgram(useGpu=True) == f"CUDA_VISIBLE_DEVICES=%(GPU)s {quoted} -m deepict"
    assert plugin.getProgram(useGpu=True, useQueue=True) == f"{quoted} -m deepict"
    assert plugin.getProgram(useGpu=False) == f"{quoted} -m deepict"
    # A site's own conda environment, without DEEPICT_PYTHON: python of that environment.
    plugin._vars["DEEPICT_ENV_ACTIVATION"] = "conda activate deepict"
    assert plugin.getProgram(useGpu=False) == "conda activate deepict && python -m deepict"
    assert "PYTHONPATH" not in plugin.getEnviron()
    plugin._vars["DEEPICT_ENV_ACTIVATION"] = ""
    assert "PYTHONPATH" in plugin.getEnviron()  # the engine shares Scipion's Python
    # The environment installb made: its python, and Scipion's PYTHONPATH stays out.
    installed = Path(plugin.getHome("venv", "bin", "python"))
    installed.parent.mkdir(parents=True)
    installed.touch()
    assert plugin.getEnginePython() == str(installed)
    assert plugin.getProgram(useGpu=False) == f"{installed} -m deepict"
    assert "PYTHONPATH" not in plugin.getEnviron()
    # DEEPICT_PYTHON, when set, wins over everything.
    plugin._vars["DEEPICT_PYTHON"] = "/opt/deepict env/bin/python"
    assert plugin.getProgram(useGpu=False) == "'/opt/deepict env/bin/python' -m deepict"



def test_a_scripts_own_setup_still_runs_the_engine_environment_of_the_installation(tmp_path):
    """The README's project script makes a Scipion setup of its own (a new SCIPION_HOME), where the environment
    'scipion3 installb deepict' made in the user's installation was no longer found: the protocols ran
    Scipion's Python, without torch. The setup now names that environment's python (DEEPICT_PYTHON)."""
    from deepict import __version__
    from deepict_scipion.headless import scipion_environment
    installation = tmp_path / "scipion"
    python = installation / "software" / "em" / f"deepict-{__version__}" / "venv" / "bin" / "python"
    base = {"SCIPION_HOME": str(installation), "PATH": "/usr/bin"}
    assert "DEEPICT_PYTHON" not in scipion_environment(tmp_path / "setup", base)  # nothing installed there
    python.parent.mkdir(parents=True)
    python.touch()
    env = scipion_environment(tmp_path / "setup", base)
    assert env["DEEPICT_PYTHON"] == str(python) and env["SCIPION_HOME"] != str(installation)
    # what the user chose stays
    assert scipion_environment(tmp_path / "setup", {**base, "DEEPICT_PYTHON": "/opt/py"})["DEEPICT_PYTHON"] == "/opt/py"
    assert "DEEPICT_PYTHON" not in scipion_environment(tmp_path / "setup", {**base, "DEEPICT_HOME": "/opt/d"})


def test_the_plugins_source_distribution_builds(tmp_path):
    """The plugin's setup.py reads its version from the engine's package: its sdist carries that file, so
    that pip can build the plugin from the sdist (without the rest of engine/)."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "deepict_scipion", source / "deepict_scipion",
                    ignore=shutil.ignore_patterns("__pycache__", "tests"))
    for name in ("setup.py", "MANIFEST.in", "README.md", "engine/deepict/__init__.py"):
        if (ROOT / name).exists():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)], cwd=source,
                   check=True, capture_output=True, timeout=300)
    with tarfile.open(next(tmp_path.glob("*.tar.gz"))) as archive:
        archive.extractall(tmp_path / "unpacked")
    unpacked = next((tmp_path / "unpacked").iterdir())
    version = subprocess.run([sys.executable, "setup.py", "--version"], cwd=unpacked, check=True,
                             capture_output=True, text=True, timeout=300).stdout.split()[-1]
    from deepict import __version__
    assert version == __version__


def test_the_readmes_installp_folder_is_one_scipion_finds_the_plugin_by():
    """`scipion3 installp -p FOLDER --devel` names the plugin after FOLDER and looks it up among the installed
    distributions: the README's command on a checkout named as cloned ('main', or with hyphens) failed with
    "File or folder ... not found", and without the engine installed first pip found no 'deepict-engine'."""
    from scipion.install.plugin_funcs import PluginInfo
    readme = (ROOT / "README.md").read_text()
    folder = re.search(r"scipion3 installp -p (\S+) --devel", readme)[1]
    engine_first = re.search(r"scipion3 pip install -e (\S+)/engine\b", readme)
    assert engine_first and engine_first[1] == folder and engine_first.start() < readme.index("scipion3 installp")
    assert PluginInfo(pipName=folder, remote=False).getDirName() == "deepict_scipion"  # as installp looks it up
    assert not PluginInfo(pipName="main", remote=False).getDirName()  # a checkout as cloned is not found


@pytest.mark.parametrize("folder", [ROOT, ROOT / "engine"], ids=["plugin", "engine"])
def test_the_project_url_is_ours_in_setup_and_in_scipion(folder):
    """Both setup.py and Scipion's plugin page give the one project URL (deepict.__url__); the plugin's page pointed
    at the original DeePiCt repository, whose maintainers do not answer for this code."""
    import deepict_scipion
    from deepict import __url__
    url = subprocess.run([sys.executable, "setup.py", "--url"], cwd=folder, check=True, capture_output=True,
                         text=True, timeout=300).stdout.split()[-1]
    assert url == __url__ == deepict_scipion.Plugin._url
    assert "ZauggGroup/DeePiCt" not in url
