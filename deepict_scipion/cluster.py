"""Sending deepict jobs through Scipion's queue (hosts.conf): memory requests, the job's own record of how
it ended, and the scheduler's reason when it did not end by itself.

pyworkflow submits each job of a protocol launched with "use queue for jobs" (``QUEUE_FOR_JOBS = Y``) and
waits until the scheduler no longer lists it, but never learns how it ended. So a queued deepict command
writes its exit status to a file when it ends; a missing file means that the job never ended by itself
(killed by the scheduler for its time or memory limit, cancelled, node failure) and the scheduler's own
words about it are searched in the job's logs.

No Scipion and no torch here: pure helpers the protocols and the plugin's runner use.
"""

import ast
import os
import re
import shlex
import shutil
import subprocess
import time

from deepict.io.files import is_temporary_name
from deepict.io.outputs import LOCK_SUFFIX

#: Memory (MB) of the engine's Python with torch and a network loaded, before any tomogram.
BASE_MEMORY_MB = 700
#: Bytes per voxel of the largest tomogram at the peak of a step (the tomogram as float32, the
#: network's output and the post-processing's labels): picking 928 x 928 x 464 peaked at 2.1 GB
#: (/usr/bin/time -v, README "Running on a cluster"), i.e. 700 MB + 3.5 bytes per voxel.
BYTES_PER_VOXEL = 3.5
#: Headroom over the estimated peak, as schedulers kill a job at its request.
MEMORY_HEADROOM = 1.5
#: The smallest request (MB).
MIN_MEMORY_MB = 2048
#: A queue parameter with this value (or none) gets the estimate.
AUTO = "auto"
#: The queue parameters of each job's memory (MB) and time limit, as the README's hosts.conf names them.
MEMORY_PARAMETER, TIME_PARAMETER = "JOB_MEMORY", "JOB_TIME"

#: Why a job ended before its step did.
TIME_LIMIT, MEMORY_LIMIT, KILLED, CANCELLED = "time limit", "memory limit", "killed", "cancelled"
#: The scheduler's words for each reason in a job's logs (SLURM's slurmstepd, PBS/Torque, SGE, the kernel), the
#: most telling first: SLURM writes "CANCELLED AT <time>" for a job it kills for its memory too, so only a
#: cancellation without a limit's words is a user's or an administrator's (scancel).
SCHEDULER_REASONS = (
    (TIME_LIMIT, re.compile(r"DUE TO TIME LIMIT|walltime .* exceeded|job killed: walltime", re.IGNORECASE)),
    (MEMORY_LIMIT, re.compile(r"exceeded memory limit|Exceeded job memory limit|Out Of Memory|oom[-_ ]kill|"
                              r"job killed: [pv]?mem|DUE TO [A-Z_ ]*MEMORY", re.IGNORECASE)),
    (KILLED, re.compile(r"DUE TO [A-Z ]+|PBS: job killed:")),  # node failure, preemption, ...
    (CANCELLED, re.compile(r"CANCELLED AT")),
)
#: For each reason (None: no word of the scheduler): what happened to the job, and what to do.
KILL_ADVICE = {
    TIME_LIMIT: ("killed by the scheduler at its time limit",
                 "Give the jobs more time (queue parameter JOB_TIME) and continue the protocol."),
    MEMORY_LIMIT: ("killed by the scheduler for using more than its memory",
                   "Give the jobs more memory (queue parameter JOB_MEMORY, in MB; auto: DeePiCt's estimate) and "
                   "continue the protocol."),
    KILLED: ("killed by the scheduler", "Continue the protocol to run it again."),
    CANCELLED: ("cancelled by a user or an administrator (scancel)",
                "It was not short of time or memory: continue the protocol to run it again."),
    None: ("killed by the scheduler? no reason in its logs",
           "Give the jobs more time or memory in the queue parameters and continue the protocol."),
}


def memory_request_mb(shape_xyz):
    """The default memory request (MB) of a step on a tomogram of ``shape_xyz`` voxels."""
    voxels = 1
    for side in shape_xyz or ():
        voxels *= int(side)
    peak = BASE_MEMORY_MB + voxels * BYTES_PER_VOXEL / 2 ** 20
    return max(MIN_MEMORY_MB, int(round(peak * MEMORY_HEADROOM / 256.0)) * 256)


def wants_memory_estimate(value):
    """Whether a JOB_MEMORY value asks for DeePiCt's estimate (:func:`memory_request_mb`): none, or 'auto'."""
    return str(value if value is not None else "").strip().lower() in ("", AUTO)


def memory_parameter_error(value):
    """Why ``value`` is no JOB_MEMORY (a whole number of MB, or 'auto'), or None: the scheduler would refuse the
    job only at its submission, in its own words (sbatch: "Invalid --mem specification")."""
    if wants_memory_estimate(value) or re.fullmatch(r"[0-9]+", str(value).strip()) and int(value) > 0:
        return None
    return (f"Queue parameters: the memory of each job ({MEMORY_PARAMETER}) is '{value}': give a whole number of MB "
            f"(e.g. 4096), or {AUTO} for DeePiCt's estimate from the largest tomogram.")


#: The queue parameter of the CPUs each job asks for (pyworkflow fills it in the submission template).
THREADS_PARAMETER = "JOB_THREADS"
#: Seconds to wait for SLURM's sinfo before doing without its answer.
SINFO_TIMEOUT_S = 30


def partition_cpus(partition, run=subprocess.run):
    """The most CPUs one node of SLURM partition ``partition`` has (``sinfo``), or None where that is not
    known: no SLURM on this machine, no such partition, or sinfo failing. ``run``: :func:`subprocess.run`."""
    try:
        result = run(["sinfo", "-h", "-N", "-p", str(partition), "-o", "%c"], capture_output=True, text=True,
                     timeout=SINFO_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    counts = [int(count) for count in re.findall(r"[0-9]+", result.stdout)] if result.returncode == 0 else []
    return max(counts) if counts else None


def threads_error(requested, cpus, label, partition):
    """Why a job asking for ``requested`` CPUs (the form's parameter ``label``) can never start on partition
    ``partition``, whose largest node has ``cpus`` (None: unknown), or None: SLURM accepts such a job and keeps
    it pending forever (reason PartitionConfig), and Scipion shows it as launched without a word."""
    if cpus is None or requested <= cpus:
        return None
    return (f"Queue parameters: each job asks for {requested} CPUs ('{label}' is {requested}), but the nodes of "
            f"partition '{partition}' have at most {cpus}: set '{label}' to {cpus} or less, or choose a queue with "
            f"larger nodes (the job would wait in the queue forever).")


#: How pyworkflow's error starts when the scheduler refused a job, and where the scheduler's words follow.
SUBMIT_FAILURE, SUBMIT_ERROR = "Failed to submit to queue", "Submit error:"
#: The queue parameter a scheduler's refusal is about (sbatch's words; qsub's are alike), and what to give.
REFUSED_PARAMETERS = (
    (MEMORY_PARAMETER, re.compile(r"--mem\b|memory specification|\bmem\b", re.IGNORECASE),
     f"a number of MB that the queue's nodes have, or {AUTO}"),
    (TIME_PARAMETER, re.compile(r"--time\b|time limit|walltime", re.IGNORECASE),
     "minutes, or hours:minutes:seconds, within the queue's limit"),
    ("GPU_COUNT", re.compile(r"\bgres\b|\bgpus?\b", re.IGNORECASE),
     "the GPUs the queue's nodes have (0 on CPU nodes)"),
    ("JOB_QUEUE", re.compile(r"partition", re.IGNORECASE), "a queue the scheduler has (hosts.conf, QUEUES)"),
)


def refused_job_error(step, subject, error, parameters):
    """The error of the ``step`` on ``subject`` whose queue job the scheduler refused: pyworkflow's ``error``
    (:data:`SUBMIT_FAILURE`) turned into the scheduler's words and the queue parameter they are about, with
    its value in ``parameters`` (the submitted ones)."""
    words = error.split(SUBMIT_ERROR, 1)[-1].strip()
    try:  # pyworkflow gives the submit command's stdout and stderr as a list
        words = "; ".join(line.strip() for output in ast.literal_eval(words) for line in output.splitlines()
                          if line.strip())
    except (ValueError, SyntaxError, TypeError, AttributeError):
        pass
    message = f"deepict {step} ({subject}): the queue refused the job: {words}."
    for name, pattern, fix in REFUSED_PARAMETERS:
        if pattern.search(words):
            return f"{message} Queue parameter {name} is '{parameters.get(name, '')}': give {fix}."
    return f"{message} Check the queue parameters and the submission template (hosts.conf)."


def status_path(job_file):
    """The file a queued job writes its exit status to, beside its job file."""
    return f"{job_file}.exit"


def queued_arguments(arguments, job_file):
    """The command's arguments followed by writing its exit status (the job script's shell runs them)."""
    status = shlex.quote(status_path(job_file))
    return f"{arguments}; status=$?; echo $status > {status}; exit $status"


#: How the banner of queue job N starts (see :data:`JOB_BANNER`).
BANNER_START = "deepict queue job {} on "
#: The first line a queued job prints, to its output and its error log: where it runs and what the scheduler
#: gave it (the protocol's logs then say which job ran where, and with which GPUs). It also marks where the
#: job's own lines start in a log file that an earlier job of the same name wrote or that several jobs share.
JOB_BANNER = ('deepict_banner="' + BANNER_START.format("${SLURM_JOB_ID:-${PBS_JOBID:-${JOB_ID:-?}}}") +
              '$(hostname): $(nproc) CPUs, CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset}" && '
              'echo "$deepict_banner" && echo "$deepict_banner" >&2 && ')


def read_exit_status(job_file):
    """The exit status a queued job wrote, or None if it did not end by itself."""
    try:
        with open(status_path(job_file)) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def job_log_texts(texts, job_id):
    """What queue job ``job_id`` wrote in ``texts`` (whole log files): each file's text from the job's banner on.

    Files without its banner are other jobs' (the protocol's tomograms run side by side, each with its
    logs); a continued protocol's job may reuse an earlier job's log name, whose lines are left out. No
    text when the job never printed its banner (cancelled before it started)."""
    banner = BANNER_START.format(job_id)
    return [text[text.rindex(banner):] for text in texts if banner in text]


def scheduler_reason(texts):
    """(reason, the scheduler's line) for a job that ended before its step from ``texts`` (its logs): the first
    line of the most telling reason (:data:`SCHEDULER_REASONS`), or None without a word of the scheduler."""
    lines = [line.strip() for text in texts for line in text.splitlines()]
    for reason, words in SCHEDULER_REASONS:
        found = next((line for line in lines if words.search(line)), None)
        if found:
            return reason, found
    return None


def killed_job_error(step, subject, job_id, texts):
    """The error of the ``step`` on ``subject`` whose queue job ``job_id`` ended before the step did: why, in the
    scheduler's words from ``texts`` (the job's logs, :func:`job_log_texts`), and what to do."""
    if not texts:
        what, advice = ("it left no log: cancelled before it started, or its node cannot write to the project's "
                        "logs folder", "Continue the protocol to run it again.")
    else:
        reason, line = scheduler_reason(texts) or (None, None)
        what, advice = KILL_ADVICE[reason]
        what = f"{what}: {line}" if line else what
    return (f"deepict {step} ({subject}): the queue job {job_id} ended before the step did ({what}); its outputs "
            f"were not written. {advice}")


def remove_job_leftovers(folder):
    """Remove what killed jobs left under ``folder``: the engine's scratch folders, partial outputs and output
    locks (tens of MB per tomogram). Only when none of the folder's jobs runs: the engine itself removes only
    leftovers of dead processes of its own host, so those of a job killed on another node would stay."""
    for root, folders, files in os.walk(folder):
        for name in [name for name in folders if is_temporary_name(name)]:
            folders.remove(name)
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        for name in files:
            if is_temporary_name(name) or name.startswith(".") and name.endswith(LOCK_SUFFIX):
                try:
                    os.remove(os.path.join(root, name))
                except FileNotFoundError:
                    pass


#: Seconds Stop waits for the jobs it cancelled to leave the queue before removing what they left (SLURM gives a
#: cancelled job KillWait seconds, 30 by default, to end).
STOP_WAIT_S = 60
#: Seconds between two looks at the queue while waiting.
STOP_POLL_S = 1.0


def wait_until_gone(job_ids, is_listed, timeout_s=STOP_WAIT_S, poll_s=STOP_POLL_S, clock=time.monotonic,
                    sleep=time.sleep):
    """Whether the queue jobs ``job_ids`` have all left the queue within ``timeout_s`` seconds; ``is_listed(job)``
    says whether the queue still lists ``job`` (pending, running or still being killed)."""
    deadline = clock() + timeout_s
    waiting = list(job_ids)
    while True:
        waiting = [job for job in waiting if is_listed(job)]
        if not waiting:
            return True
        if clock() >= deadline:
            return False
        sleep(poll_s)


def remove_stale_status(job_file):
    """Forget the status of an earlier run of the same job (a continued protocol)."""
    try:
        os.remove(status_path(job_file))
    except FileNotFoundError:
        pass
