"""deepict_scipion: DeePiCt (Deep Picker in Context) in PyTorch, as a Scipion plugin.

The Scipion layer (this package, ``protocols``, ``viewers``) is thin: protocols validate their
inputs, write the files the engine needs and run the ``deepict`` command (``deepict_scipion.core``)
through ``runJob``, so every heavy step can be sent to a cluster queue by Scipion's host
configuration. The engine needs only numpy, scipy, mrcfile and torch; it can be used without Scipion,
so the Plugin class is only defined where Scipion (pwem) is installed.
"""

import os
import sys

from .core import __version__

_logo = ""
_references = ["deTeresaTrueba2023"]

#: Environment variables of the plugin (``scipion3 config -p deepict_scipion`` shows them).
DEEPICT_PYTHON = "DEEPICT_PYTHON"
DEEPICT_ENV_ACTIVATION = "DEEPICT_ENV_ACTIVATION"

#: Subcommands that have no --device option.
CPU_ONLY_COMMANDS = ("import-model", "model-info", "evaluate", "export", "spectrum", "equalize")

try:
    import pwem
    from pyworkflow.utils import Environ
except ImportError:  # engine-only installation: no Scipion plugin to register
    pwem = None

if pwem is not None:
    class Plugin(pwem.Plugin):
        """Runs the engine with ``DEEPICT_PYTHON -m deepict_scipion.core.cli``.

        By default the engine runs in Scipion's own Python (it is installed with the plugin). A
        site that keeps torch in another environment sets ``DEEPICT_ENV_ACTIVATION`` (e.g.
        ``conda activate deepict``) and ``DEEPICT_PYTHON`` (that environment's python).
        """

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
            return f"{prefix}{gpus}{cls.getVar(DEEPICT_PYTHON)} -m deepict_scipion.core.cli"

        @classmethod
        def runDeepict(cls, protocol, subcommand, args, useGpu=False):
            """Run one ``deepict`` subcommand as a job of ``protocol`` (local, or through the queue)."""
            device = "" if subcommand in CPU_ONLY_COMMANDS else (" --device auto" if useGpu else " --device cpu")
            protocol.runJob(cls.getProgram(useGpu, protocol.useQueue()), f"{subcommand} {args}{device}",
                            env=cls.getEnviron(), numberOfMpi=1)

        @classmethod
        def defineBinaries(cls, env):
            """Nothing to install: the engine is a Python dependency of the plugin."""
