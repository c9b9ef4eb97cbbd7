"""The package imports no Scipion module, and Scipion still finds the plugin and everything in it.

pyworkflow reads its settings from the environment when first imported, so importing the engine or
``deepict_scipion.headless`` must not import it (a script sets the environment after importing
``headless``). The Plugin class is built on first access; Scipion's discovery must still see it.
Both run in fresh interpreters, since this test process has imported Scipion already.
"""

import subprocess
import sys

NO_SCIPION = """
import sys
import deepict_scipion, deepict_scipion.headless, deepict.cli.main, deepict_scipion.demo
loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('pyworkflow', 'pwem', 'tomo'))
assert not loaded, loaded
"""

DISCOVERY = """
import os, sys
import pwem
from pwem import Domain
import deepict_scipion

module = Domain.getPlugins()["deepict_scipion"]
assert module is deepict_scipion
assert issubclass(module.Plugin, pwem.Plugin) and module.Plugin is deepict_scipion.Plugin
instance = module._pluginInstance
assert instance.getName() == "deepict_scipion", instance.getName()
assert os.path.samefile(instance.getPath(), os.path.dirname(deepict_scipion.__file__))
# No engine environment is installed in the tests' Scipion setup: the engine runs in this Python.
assert module.Plugin.getEnginePython() == sys.executable
assert module.Plugin.getProgram(useGpu=False) == f"{sys.executable} -m deepict"

protocols = Domain.getProtocols()
for name in ("ProtDeepictTrain3D", "ProtDeepictPick", "ProtDeepictSegment3D", "ProtDeepictImportModel",
             "ProtDeepictTrain2D", "ProtDeepictSegment2D", "ProtDeepictEqualize", "ProtDeepictExport",
             "ProtDeepictEvaluate", "ProtDeepictEnsemble"):
    assert name in protocols, name
    assert protocols[name]._package is module and protocols[name]._plugin is instance, name
assert "DeepictModel" in Domain.getObjects()
assert "DeepictModel" in Domain.getMapperDict()
viewers = Domain.getViewers()
for name in ("DeepictTrainingViewer", "DeepictEvaluationViewer", "DeepictPicksViewer", "DeepictSpectrumViewer"):
    assert name in viewers, name
print("discovered")
"""


def run_python(code):
    # The environment is the tests' headless Scipion setup (root conftest.py).
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_engine_and_headless_do_not_import_scipion():
    result = run_python(NO_SCIPION)
    assert result.returncode == 0, result.stderr


def test_scipion_discovers_plugin_protocols_viewers_and_objects():
    result = run_python(DISCOVERY)
    assert result.returncode == 0 and "discovered" in result.stdout, result.stdout[-2000:] + result.stderr[-3000:]


def test_scipions_test_runner_lists_the_plugins_tests():
    """``scipion3 tests --show`` walks every plugin's ``tests`` folder as a package: without one it stopped
    ("Start directory is not importable") for all the plugins of the installation."""
    result = subprocess.run([sys.executable, "-m", "pyworkflow.apps.pw_run_tests", "--show", "--grep", "deepict"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "deepict_scipion.tests.test_protocols_3d.TestDeepict3DProtocols" in result.stdout, result.stdout[-2000:]


def test_every_protocol_that_defines_outputs_declares_them():
    """A template wires a protocol's outputs downstream before it has run only through _possibleOutputs
    (import copick picks had none, so its coordinates could not be chosen in a template)."""
    import inspect
    import re

    from pyworkflow.protocol import Protocol

    import deepict_scipion.protocols as protocols

    defines = re.compile(r"\._define(Outputs|Results)\(")
    checked = []
    for name, cls in inspect.getmembers(protocols, inspect.isclass):
        if issubclass(cls, Protocol) and defines.search(inspect.getsource(cls)):
            assert cls._possibleOutputs, f"{name} defines outputs but declares no _possibleOutputs"
            checked.append(name)
    assert "ProtDeepictCopickImport" in checked and "ProtDeepictTrain3D" in checked, checked
