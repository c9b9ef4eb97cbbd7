"""deepict_scipion: DeePiCt (Deep Picker in Context) in PyTorch, as a Scipion plugin.

The Scipion layer (this package, ``protocols``, ``viewers``) is thin: protocols validate their
inputs, write the files the engine needs and run the engine's command (``python -m deepict``)
through ``runJob``, so every heavy step can be sent to a cluster queue by Scipion's host
configuration. The engine (the ``deepict-engine`` distribution) needs numpy, scipy, mrcfile,
emtable and, to run a network, torch: Scipion's own Python needs no torch when the engine runs in
the environment ``scipion3 installb deepict`` makes (see ``Plugin.defineBinaries``).

Importing this package imports nothing from Scipion: pyworkflow reads its configuration from the
environment once, when first imported, so the engine, the ``deepict`` command and
``deepict_scipion.headless`` (which prepares that environment) must not import it early. The
``Plugin`` class, which subclasses ``pwem.Plugin``, is built on first access (PEP 562), which is
how Scipion's plugin discovery (``Domain.registerPlugin``: ``module.Plugin()``) and the protocols
(``from .. import Plugin``) reach it.
"""

import os
import shlex
import sys

from deepict import __url__, __version__

_logo = ""
_references = ["deTeresaTrueba2023"]

#: Environment variables of the plugin (``scipion3 config -p deepict_scipion`` shows them).
DEEPICT_HOME = "DEEPICT_HOME"
DEEPICT_TORCH_BUILD = "DEEPICT_TORCH_BUILD"
DEEPICT_PYTHON = "DEEPICT_PYTHON"
DEEPICT_ENV_ACTIVATION = "DEEPICT_ENV_ACTIVATION"

#: The binary package ``scipion3 installb deepict`` installs: a Python environment with torch and the
#: engine, in ``<EM_ROOT>/deepict-<version>`` (Scipion names a package's folder ``<name>-<version>``).
BINARY = "deepict"
#: The environment's python, relative to its folder.
ENVIRONMENT_PYTHON = os.path.join("venv", "bin", "python")
#: Flag files of the install steps (Scipion skips a step whose flag exists).
TORCH_INSTALLED = "TORCH_INSTALLED"
ENGINE_INSTALLED = "ENGINE_INSTALLED"
#: PyTorch's wheel index; a build tag (cpu, cu126, cu128, ...) names one of its folders.
TORCH_INDEX = "https://download.pytorch.org/whl"
#: The torch release the tests passed with (scripts/setup.sh and constraints.txt install it too), any build.
TORCH_VERSION = "2.13.0"


def engineSource():
    """The engine's source folder when the plugin runs from a source checkout (it lies beside the plugin
    there), else ``None`` (a plugin installed from the package index)."""
    source = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "engine")
    return source if os.path.isfile(os.path.join(source, "setup.py")) else None


def engineRequirement():
    """What the environment's pip installs for the engine, torch extra included: the checkout's engine,
    editable so that it stays the plugin's version as the checkout changes, else the release of the
    plugin's version from the index."""
    source = engineSource()
    if source:
        return f"-e {shlex.quote(source + '[torch]')}"
    return shlex.quote(f"deepict-engine[torch]=={__version__}")


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
    from pyworkflow.config import VarTypes
    from pyworkflow.utils import Environ

    class Plugin(pwem.Plugin):
        """Runs the engine with ``PYTHON -m deepict``, PYTHON being (the first that applies):

        1. ``DEEPICT_PYTHON``, when set (in the environment or Scipion's configuration);
        2. the python of the environment ``scipion3 installb deepict`` made (``DEEPICT_HOME/venv``),
           when it exists: torch (the build ``DEEPICT_TORCH_BUILD`` names) and the engine;
        3. ``python`` of the environment ``DEEPICT_ENV_ACTIVATION`` activates (e.g. ``conda activate
           deepict``), when that is set;
        4. Scipion's own Python, where the engine is a dependency of the plugin (how CI runs it).
        """

        __qualname__ = "Plugin"  # logs and reprs name it deepict_scipion.Plugin
        _url = __url__  # the project's home, one constant with setup.py's url
        _supportedVersions = [__version__]
        _homeVar = DEEPICT_HOME

        @classmethod
        def _defineVariables(cls):
            cls._defineEmVar(DEEPICT_HOME, f"{BINARY}-{__version__}", var_type=VarTypes.FOLDER,
                             description="Folder of the engine's environment that 'scipion3 installb deepict' "
                                         "makes (venv/ inside).")
            cls._defineVar(DEEPICT_TORCH_BUILD, "", var_type=VarTypes.STRING,
                           description=f"The build of torch {TORCH_VERSION} 'scipion3 installb deepict' installs: "
                                       "cpu, or a CUDA build of PyTorch's index that this release has (cu126, "
                                       "cu128, ...); empty: the package index's default build (CUDA on Linux "
                                       "x86-64).")
            cls._defineVar(DEEPICT_PYTHON, "", var_type=VarTypes.PATH,
                           description="The python that runs the engine; empty: the installed environment's, "
                                       "else python of DEEPICT_ENV_ACTIVATION, else Scipion's own.")
            cls._defineVar(DEEPICT_ENV_ACTIVATION, "", var_type=VarTypes.STRING,
                           description="Command that activates an engine environment of the site's own, "
                                       "e.g. 'conda activate deepict'; empty: none.")

        @classmethod
        def getEnginePython(cls):
            """The python that runs the engine (see the class docstring for the order)."""
            if cls.getVar(DEEPICT_PYTHON):
                return cls.getVar(DEEPICT_PYTHON)
            installed = cls.getHome(ENVIRONMENT_PYTHON)
            if os.path.exists(installed):
                return installed
            return "python" if cls.getVar(DEEPICT_ENV_ACTIVATION) else sys.executable

        @classmethod
        def getEnviron(cls, submitsJobs=False):
            """The engine's environment; ``submitsJobs``: for jobs this process submits to a queue."""
            environ = Environ(os.environ)
            # Scipion's PYTHONPATH must not leak into an engine environment of its own.
            if cls.getVar(DEEPICT_ENV_ACTIVATION) or cls.getEnginePython() != sys.executable:
                environ.pop("PYTHONPATH", None)
            if submitsJobs:
                # A submitted job sees the GPUs its scheduler gives it (CUDA_VISIBLE_DEVICES, which the job
                # would inherit from this machine's shell unless the scheduler sets it). A protocol that
                # itself runs as a queue job keeps its own: they are the scheduler's.
                environ.pop("CUDA_VISIBLE_DEVICES", None)
            return environ

        @classmethod
        def getProgram(cls, useGpu=True, useQueue=False):
            """The engine's command line, with environment activation and GPU selection."""
            activation = cls.getVar(DEEPICT_ENV_ACTIVATION)
            prefix = f"{activation} && " if activation else ""
            # Under a queue the scheduler assigns the GPUs; otherwise Scipion fills in %(GPU)s.
            gpus = "CUDA_VISIBLE_DEVICES=%(GPU)s " if useGpu and not useQueue else ""
            return f"{prefix}{gpus}{shlex.quote(cls.getEnginePython())} -m deepict"

        @classmethod
        def runDeepict(cls, protocol, subcommand, args, useGpu=False, threads=0, jobFile=None):
            """Run one ``deepict`` subcommand as a job of ``protocol`` (local, or through the queue).

            ``args``: usually ``--job "FILE"``, a job file whose device the protocol chose
            (``deepict.jobs.set_device``); ``useGpu`` makes Scipion's GPUs visible to the job (locally:
            the form's GPU list; under a queue: the GPUs the scheduler gives).
            ``threads`` > 0 caps the engine's CPU threads (OMP_NUM_THREADS); 0 lets it use every usable core.
            When each job goes to the queue (``QUEUE_FOR_JOBS``), the job prints where it runs and writes
            its exit status beside ``jobFile`` (:mod:`deepict_scipion.cluster`), since pyworkflow only
            waits for a queued job to leave the queue.
            """
            from .cluster import JOB_BANNER, queued_arguments
            environ = cls.getEnviron(submitsJobs=protocol.useQueueForSteps())
            if threads > 0:
                environ["OMP_NUM_THREADS"] = str(threads)
            program, arguments = cls.getProgram(useGpu, protocol.useQueue()), f"{subcommand} {args}"
            if protocol.useQueueForSteps() and jobFile:
                program, arguments = JOB_BANNER + program, queued_arguments(arguments, jobFile)
            protocol.runJob(program, arguments, env=environ, numberOfMpi=1)

        @classmethod
        def defineBinaries(cls, env):
            """``scipion3 installb deepict``: an environment of the engine's own in ``DEEPICT_HOME``, a venv
            of Scipion's Python with torch (the build ``DEEPICT_TORCH_BUILD`` names) and the engine.

            Installed with the plugin (``default``), as Scipion does for the tools whose heavy
            dependencies must not enter its own Python. Each step runs in the package folder and touches
            its flag, so a failed install resumes at the failed step; a new torch build needs a new
            environment (``scipion3 uninstallb deepict-<version>``, then ``installb``).
            """
            python = shlex.quote(ENVIRONMENT_PYTHON)
            build = cls.getVar(DEEPICT_TORCH_BUILD)
            torchIndex = f" --index-url {TORCH_INDEX}/{shlex.quote(build)}" if build else ""
            isolated = "env -u PYTHONPATH"  # Scipion's own packages must not satisfy the environment's needs
            commands = [
                (f"{isolated} {shlex.quote(env.getPython())} -m venv venv", ENVIRONMENT_PYTHON),
                (f"{isolated} {python} -m pip install{torchIndex} torch=={TORCH_VERSION} && touch {TORCH_INSTALLED}",
                 TORCH_INSTALLED),
                (f"{isolated} {python} -m pip install {engineRequirement()} && "
                 f"{isolated} {python} -m deepict --version && touch {ENGINE_INSTALLED}", ENGINE_INSTALLED),
            ]
            env.addPackage(BINARY, version=__version__, tar="void.tgz", commands=commands, default=True)

    return Plugin
