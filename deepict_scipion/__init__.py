"""deepict_scipion: DeePiCt (Deep Picker in Context) in PyTorch, as a Scipion plugin.

The Scipion layer (this package, ``protocols``, ``viewers``) is thin: protocols validate their
inputs, write the files the engine needs and run the ``deepict`` command (``deepict``)
through ``runJob``, so every heavy step can be sent to a cluster queue by Scipion's host
configuration. The engine needs only numpy, scipy, mrcfile and torch.

Importing this package imports nothing from Scipion: pyworkflow reads its configuration from the
environment once, when first imported, so the engine, the ``deepict`` command and
``deepict_scipion.headless`` (which prepares that environment) must not import it early. The
``Plugin`` class, which subclasses ``pwem.Plugin``, is built on first access (PEP 562), which is
how Scipion's plugin discovery (``Domain.registerPlugin``: ``module.Plugin()``) and the protocols
(``from .. import Plugin``) reach it.
"""

import os
import sys

from deepict import __version__

_logo = ""
_references = ["deTeresaTrueba2023"]

#: Environment variables of the plugin (``scipion3 config -p deepict_scipion`` shows them).
DEEPICT_PYTHON = "DEEPICT_PYTHON"
DEEPICT_ENV_ACTIVATION = "DEEPICT_ENV_ACTIVATION"

#: Subcommands that have no --device option.
CPU_ONLY_COMMANDS = ("import-model", "model-info", "evaluate", "export", "spectrum", "equalize")


def __getattr__(name):
    if name != "Plugin":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    plugin = _define_plugin()
    globals()["Plugin"] = plugin  # later accesses find it without calling __getattr__
    return plugin


def _define_plugin():
    # Defined here, not in a submodule: Scipion takes the plugin's name and folder from the class's
    # module (pyworkflow.plugin.Plugin.getName / getPath), which must be this package.
    import pwem
    from pyworkflow.utils import Environ

    class Plugin(pwem.Plugin):
        """Runs the engine with ``DEEPICT_PYTHON -m deepict``.

        By default the engine runs in Scipion's own Python (it is installed with the plugin). A
        site that keeps torch in another environment sets ``DEEPICT_ENV_ACTIVATION`` (e.g.
        ``conda activate deepict``) and ``DEEPICT_PYTHON`` (that environment's python).
        """

        __qualname__ = "Plugin"  # logs and reprs name it deepict_scipion.Plugin
        _url = "https://github.com/ZauggGroup/DeePiCt"
        _supportedVersions = [__version__]

        @classmethod
        def _defineVariables(cls):
            cls._defineVar(DEEPICT_PYTHON, sys.executable)
            cls._defineVar(DEEPICT_ENV_ACTIVATION, "")

        @classmethod
        def getEnviron(cls):
            environ = Environ(os.environ)
            # Scipion's PYTHONPATH must not leak into a separate engine environment.
            if cls.getVar(DEEPICT_ENV_ACTIVATION):
                environ.pop("PYTHONPATH", None)
            return environ

        @classmethod
        def getProgram(cls, useGpu=True, useQueue=False):
            """The ``deepict`` command line, with environment activation and GPU selection."""
            activation = cls.getVar(DEEPICT_ENV_ACTIVATION)
            prefix = f"{activation} && " if activation else ""
            # Under a queue the scheduler assigns the GPUs; otherwise Scipion fills in %(GPU)s.
            gpus = "CUDA_VISIBLE_DEVICES=%(GPU)s " if useGpu and not useQueue else ""
            return f"{prefix}{gpus}{cls.getVar(DEEPICT_PYTHON)} -m deepict"

        @classmethod
        def runDeepict(cls, protocol, subcommand, args, useGpu=False, threads=0):
            """Run one ``deepict`` subcommand as a job of ``protocol`` (local, or through the queue).

            ``threads`` > 0 caps the engine's CPU threads (OMP_NUM_THREADS); 0 lets it use every usable core.
            """
            device = "" if subcommand in CPU_ONLY_COMMANDS else (" --device auto" if useGpu else " --device cpu")
            environ = cls.getEnviron()
            if threads > 0:
                environ["OMP_NUM_THREADS"] = str(threads)
            protocol.runJob(cls.getProgram(useGpu, protocol.useQueue()), f"{subcommand} {args}{device}",
                            env=environ, numberOfMpi=1)

        @classmethod
        def defineBinaries(cls, env):
            """Nothing to install: the engine is a Python dependency of the plugin."""

    return Plugin
