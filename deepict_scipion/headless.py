"""Environment for running Scipion projects headless (scripts, tests, the demo).

pyworkflow reads its configuration from environment variables once, when it is first imported, so
these must be in place before anything imports ``pyworkflow``. Neither this module nor the package
``deepict_scipion`` imports Scipion when imported, so a script (or the tests' conftest, or the demo)
can import this first and set the environment before it imports pyworkflow, pwem or the plugin's
protocols; :func:`create_project` imports pyworkflow when called, after that.
"""

import os
import sys
import time

from deepict import __version__
from deepict_scipion import BINARY, DEEPICT_HOME, DEEPICT_PYTHON, ENVIRONMENT_PYTHON

#: The GUI's protocol view (its *View* box) that lists the tomography protocols, DeePiCt's among them.
TOMOGRAPHY_VIEW = "Tomography"
HOSTS_CONF = "[localhost]\nPARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d --map-by node %_(COMMAND)s\n"
#: Seconds between two looks at a protocol that runs as a queue job (pyworkflow's GUI looks every few seconds).
POLL_SECONDS = 10


def user_data_folder(root):
    """Scipion's user data folder (SCIPION_USER_DATA) of the setup under ``root``."""
    return os.path.join(os.path.abspath(root), "userdata")


def project_folder(root, project):
    """Where Scipion keeps ``project`` in the setup under ``root``."""
    return os.path.join(user_data_folder(root), "projects", project)


def scipion_environment(root, base=None, hosts_conf=None):
    """Environment variables for a self-contained Scipion setup under ``root`` (created if needed); its
    execution hosts and queues are those of the file ``hosts_conf`` where given (e.g. the facility's
    hosts.conf), else of a hosts.conf of this machine alone without a queue."""
    root = os.path.abspath(root)
    home, userData = os.path.join(root, "scipion_home"), user_data_folder(root)
    os.makedirs(os.path.join(home, "config"), exist_ok=True)
    os.makedirs(userData, exist_ok=True)
    hosts = os.path.abspath(hosts_conf) if hosts_conf else os.path.join(home, "config", "hosts.conf")
    if hosts_conf and not os.path.isfile(hosts):
        raise FileNotFoundError(f"scipion_environment: hosts_conf {hosts} is not a file: give the path of a "
                                "Scipion hosts.conf (README, Running on a cluster)")
    if not os.path.exists(hosts):
        with open(hosts, "w") as handle:
            handle.write(HOSTS_CONF)
    env = dict(os.environ if base is None else base)
    engine = installed_engine_python(env)
    if engine and not (env.get(DEEPICT_PYTHON) or env.get(DEEPICT_HOME)):
        # The setup below is a new SCIPION_HOME: the engine's environment of the installation the script runs
        # from would no longer be found there, and the protocols would run Scipion's Python, maybe without torch.
        env[DEEPICT_PYTHON] = engine
    env.update(SCIPION_HOME=home, SCIPION_USER_DATA=userData, SCIPION_DOMAIN="pwem",
               SCIPION_PYTHON=sys.executable, SCIPION_TEST_NOSYNC="1", SCIPION_NOTIFY="False",
               SCIPION_HOSTS=hosts, SCIPION_TESTS=os.path.join(root, "tests_data"),
               SCIPION_TESTS_OUTPUT=os.path.join(root, "tests_output"))
    # Protocol subprocesses must find the same interpreter's scripts (deepict, mpirun-free runJob).
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def installed_engine_python(env):
    """The python of the engine's environment that ``scipion3 installb deepict`` made in the Scipion installation
    of ``env`` (its ``SCIPION_HOME``, or ``EM_ROOT`` / ``SCIPION_SOFTWARE`` where set, as pwem reads them), or
    ``None`` when there is none."""
    home = env.get("SCIPION_HOME")
    software = env.get("SCIPION_SOFTWARE") or (os.path.join(home, "software") if home else None)
    em_root = env.get("EM_ROOT") or (os.path.join(software, "em") if software else None)
    if not em_root:
        return None
    python = os.path.join(em_root, f"{BINARY}-{__version__}", ENVIRONMENT_PYTHON)
    return python if os.path.isfile(python) else None


def create_project(name):
    """A new Scipion project ``name`` in the current setup that opens in the GUI's Tomography view.

    Scipion opens a new project in the first protocol view its plugins happened to load, often the
    single-particle one, whose tree has no tomography or DeePiCt protocol. Call it once the
    environment (:func:`scipion_environment`, or Scipion's own) is in place.
    """
    from pyworkflow.project import Manager
    project = Manager().createProject(name)
    project.getSettings().setProtocolView(TOMOGRAPHY_VIEW)
    project.saveSettings()
    return project


class LaunchError(Exception):
    """A protocol that was not launched: the errors the GUI's form would show before launching it."""


def send_to_queue(protocol, queue, **parameters):
    """Make ``protocol`` run through ``queue`` (a queue of hosts.conf's QUEUES), as the GUI's "Use a queue engine"
    does, with ``parameters`` (JOB_MEMORY, JOB_TIME, QUEUE_FOR_JOBS, ...) over that queue's defaults in hosts.conf;
    ``protocol`` comes from ``project.newProtocol``. Returns it."""
    project = protocol.getProject()
    queues = project.getHostConfig(protocol.getHostName()).getQueueSystem().getQueues() or {}
    if queue not in queues:
        raise LaunchError(f"send_to_queue: hosts.conf has no queue '{queue}' (its QUEUES: "
                          f"{', '.join(sorted(queues)) or 'none'}): give one of those")
    values = {name: default for name, default, *_ in queues[queue]}
    values.update({name: str(value) for name, value in parameters.items()})
    protocol._useQueue.set(True)  # pyworkflow has no setter: the GUI sets the same attribute
    protocol.setQueueParams((queue, values))
    return protocol


def launch_and_wait(project, protocol, poll_s=POLL_SECONDS, report=print):
    """Launch ``protocol`` in ``project`` and return it, as the project's database has it (its status and outputs),
    once it has ended (finished, failed or aborted); whether it runs here or through a queue.

    ``project.launchProtocol(protocol, wait=True)`` waits for a local run and for one whose steps are queue jobs
    (``QUEUE_FOR_JOBS = Y``), but returns as soon as a protocol sent to the queue as one job (``N``) is
    submitted. So the protocol's status is read (as the GUI does: from the database its job writes, checking
    that the job is still in the queue) every ``poll_s`` seconds until it is no longer active; ``report`` gets a
    line each time its status or its steps done change. Raises :class:`LaunchError`, launching nothing, when
    the protocol has the errors the GUI's form would show (a queue job asking for more than the queue's nodes
    have would otherwise wait in the queue forever)."""
    errors = protocol.validate()
    if errors:
        raise LaunchError(f"{protocol.getRunName()} was not launched: {' '.join(errors)}")
    project.launchProtocol(protocol, wait=True)
    line = None
    while True:
        project._updateProtocol(protocol)  # pyworkflow's own refresh: its run.db, then the queue for a lost job
        project.mapper.commit()
        if progress_line(protocol) != line:
            line = progress_line(protocol)
            report(line)
        if not protocol.isActive():
            return project.getProtocol(protocol.getObjId())  # with the outputs its job registered
        time.sleep(poll_s)


def progress_line(protocol):
    """Where ``protocol`` stands, in one line: its name, status, steps done and, while active, its queue jobs."""
    jobs = ", ".join(str(job) for job in protocol.getJobIds()) if protocol.isActive() else ""
    return (f"{protocol.getRunName()}: {protocol.getStatus()} ({protocol.stepsDone}/{protocol.numberOfSteps} "
            f"steps done)" + (f", queue job {jobs}" if jobs else ""))
