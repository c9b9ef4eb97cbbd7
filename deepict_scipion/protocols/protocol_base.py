"""Base classes of the DeePiCt protocols: compute parameters, running the engine, input checks, and
the form and steps picking and 3D segmentation share."""

import hashlib
import json
import logging
import os
import shlex
import struct
import subprocess
import threading

from pwem.protocols import EMProtocol
from pyworkflow.constants import QUEUE_FOR_JOBS
from pyworkflow.object import Pointer, PointerList
from pyworkflow.protocol import params
from pyworkflow.protocol.params import BIN_THREADS_PARAM
from pyworkflow.protocol.constants import GPU_LIST, STATUS_RUNNING, STEPS_PARALLEL, UNKNOWN_JOBID, USE_GPU
from pyworkflow.protocol.launch import _checkJobStatus
from tomo.objects import SetOfTomoMasks
from tomo.protocols import ProtTomoBase

from deepict import jobs
from deepict.conventions import (CONTEXT_MODES, DEFAULT_CLASS_NAME, MAX_RESCALE_FACTOR, ROTATED_THRESHOLD_SHIFT,
                                  fits_model_voxel_size, rescale_factor, rescale_within_limit, voxel_sizes_differ)
from deepict.errors import DeepictError
from deepict.job_warnings import WARNINGS_SUFFIX, forget_warnings, warnings_in_folder
from deepict.nn.model_files import PUBLISHED_SOURCE_PREFIX, published_spectrum_warning
from deepict.infer.clusters import ClusterParameters
from deepict.infer.tiling import check_box_margin
from deepict.parameters import PRECISION_AUTO, PRECISIONS, choices_of, default_of, option_help
from deepict.train.config import RESUMABLE_CHANGES
from deepict.train.state import state_path

from .. import Plugin, cluster, run_logs
from ..constants import PROBABILITY_MAPS_ATTRIBUTE
from ..convert import baseName, equalizedReference, isMarked, mark, newTomoMask, tomogramKey, tomogramsByKey

logger = logging.getLogger(__name__)

THREADS_HELP = ("CPU threads of each deepict job (OMP_NUM_THREADS). 0: every core the job may use; give a number "
                "when sharing the machine or submitting to a queue (which reserves that many cores): more "
                "threads than free cores slow PyTorch down many times.")


PRECISION_PARAM = "networkPrecision"
PRECISION_FORM_HELP = (
    "Numeric precision of the network. auto: bf16 on a GPU that supports it (else fp16), bf16 on CPUs that compute "
    "it natively (Intel Xeon with AMX or AVX-512 BF16, AMD Zen 4 and newer), fp32 on other CPUs, where bf16 is "
    "emulated and slower. bf16/fp16 run the convolutions up to about twice as fast for the larger networks, with "
    "probabilities within about 0.01 of fp32's; fp16 needs a GPU. The model files are always fp32, "
    "whatever precision trained them, so a model trained on a GPU in fp16 runs anywhere.")


#: Form parameters that say how a run runs, not what it computes (the precision's results differ by rounding
#: only): a Continue after changing them reruns nothing.
RUN_PARAMS = ("runName", "runMode", "hostName", USE_GPU, GPU_LIST, PRECISION_PARAM, "numberOfThreads", "numberOfMpi",
              BIN_THREADS_PARAM)


class DeepictJobError(Exception):
    """A deepict job failed with an error the user can fix; the message is the engine's one line."""


#: A checkpoint's voxel size is typed at its import (the file records none): a wrong one looks like wrong tomograms.
TYPED_VOXEL_SIZE_HINT = (" The voxel size of a model imported from a DeePiCt checkpoint is the one typed at its "
                         "import: if that was wrong, import it again with the right one (the published networks: "
                         "13.48 Å).")


def stableDigest(value):
    """A short digest of ``value`` (anything JSON can write) for a step's arguments: pyworkflow stores a step's
    arguments and, on Continue, reruns a step whose arguments changed, so a step given the digest of what it
    depends on reruns exactly when that changed (and a digest keeps the stored arguments short)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def changedParameters(before, after, prefix=""):
    """The dotted paths ("postprocess.threshold") whose values differ between two job files' contents
    (:func:`deepict.jobs.job_to_dict`)."""
    changed = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += changedParameters(old, new, f"{prefix}{name}.")
        elif old != new:
            changed.append(f"{prefix}{name}")
    return changed


def sentenceStart(text):
    """``text`` to open a sentence of a summary or methods text: its first letter upper-case, the rest as it is
    (a class name: 'cytosol' -> 'Cytosol', 'NPC' stays)."""
    return text[:1].upper() + text[1:]


def counted(count, noun, plural=None):
    """``count`` and ``noun`` for a summary or methods text, the noun in the plural unless the count is 1:
    counted(1, "epoch") -> '1 epoch', counted(2, "tomogram") -> '2 tomograms', counted(3, "class", "classes")."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def listed(items):
    """Items as a sentence lists them: 'a', 'a and b', 'a, b and c'."""
    items = [str(item) for item in items]
    return " and ".join(items) if len(items) < 3 else f"{', '.join(items[:-1])} and {items[-1]}"


def citeWithLink(cite):
    """A bibtex entry whose ``doi`` is a link, as pyworkflow links a citation to its ``doi`` field as it is: the
    entries hold the bare DOI (as BibTeX has it), which becomes https://doi.org/DOI."""
    doi = cite.get("doi", "").strip()
    if doi and not doi.lower().startswith(("http://", "https://")):
        return {**cite, "doi": f"https://doi.org/{doi}"}
    return cite


class ProtDeepictBase(EMProtocol, ProtTomoBase):
    """Base class: every DeePiCt protocol runs the ``deepict`` command through :meth:`runDeepict`."""

    #: No protocol references: every protocol is DeePiCt's, which the plugin's package reference (the package's
    #: _references) cites; Scipion lists both, so the paper was listed twice. A protocol implementing another
    #: method would list that method's paper here.
    _references = []
    #: What the protocol tree, the form's title and a new run's name put before the protocol's label, where
    #: Scipion puts the plugin's module name: "deepict_scipion - " made every entry read alike in a narrow tree.
    LABEL_PREFIX = "DeePiCt"
    #: The deepict job of the protocol's main step: its form's defaults and choices come from there.
    _jobClass = None
    #: Whether the steps' arguments name everything they depend on (the jobs' digests, ...); otherwise a
    #: protocol's first steps depend on the whole form (:meth:`_addDependencies`).
    STEPS_NAME_THEIR_INPUTS = False
    #: The engine's warnings listed in the summary; the rest are counted (all are in the log).
    SUMMARY_WARNINGS = 10
    #: The jobs named after a warning they share.
    SUMMARY_WARNING_JOBS = 5

    @classmethod
    def getClassPackageName(cls):
        """The plugin's name where pyworkflow shows it: the form header's "DeePiCt compute", not the module's name."""
        return cls.LABEL_PREFIX

    @classmethod
    def getClassLabel(cls, prependPackageName=True):
        label = super().getClassLabel(prependPackageName=False)
        return f"{cls.LABEL_PREFIX} - {label}" if prependPackageName else label

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._heldFailures = []  # failed steps not reported yet (see _stepFinished)
        # ids of the steps started and not reported yet: pyworkflow reports the steps that ended since its
        # last look one at a time, so a step may have ended, unreported, while another one is reported
        self._unreportedSteps = set()

    def _default(self, path):
        """The default of a parameter of this protocol's job (one place for it: the engine's job)."""
        return default_of(self._jobClass, path)

    def _help(self, path):
        """The help of a parameter of this protocol's job, as a sentence of the form."""
        text = option_help(self._jobClass, path)
        return f"{text[0].upper()}{text[1:]}."

    def _choiceIndex(self, path):
        """The form's index of the default of a parameter with choices (an EnumParam stores the index)."""
        return list(choices_of(self._jobClass, path)).index(self._default(path))

    def _defineGpuParams(self, form):
        form.addHidden(USE_GPU, params.BooleanParam, default=True, label="Use GPU",
                       help="Run the network on a GPU if one is visible (the CPU is used otherwise).")
        form.addHidden(GPU_LIST, params.StringParam, default="0", label="Choose GPU IDs",
                       help="GPU to use (one is enough: DeePiCt networks are small). On a machine without a "
                            "GPU the steps run on the CPU whatever this says; the run's log names the device.")

    def _defineComputeParams(self, form, gpu=True, threads=1):
        """The form's compute header: the GPU choice and the engine's CPU threads per job; protocols that
        run one step per tomogram (STEPS_PARALLEL) also get how many tomograms run at once (Scipion threads).

        pyworkflow reads ``binThreads`` of a STEPS_PARALLEL protocol and ``numberOfThreads`` of a serial
        one (run log, queue submission); 0 lets the engine use every core the job may use.
        """
        if gpu:
            self._defineGpuParams(form)
            # Before the parallel section: the form draws only the thread counts of that section (in its header).
            self._definePrecisionParam(form)
        if self.modeParallel():
            form.addParallelSection(threads=threads, mpi=0)
            form.addParam(BIN_THREADS_PARAM, params.IntParam, default=0, label="Threads per tomogram",
                          help=THREADS_HELP + " When several tomograms run at once (Scipion threads > 1), give "
                                              "each a share, e.g. 4 threads x 4 tomograms on 16 cores.")
        else:
            form.addParallelSection(threads=0, mpi=0)
            form.addParam("numberOfThreads", params.IntParam, default=0, label="Threads", help=THREADS_HELP)

    def _definePrecisionParam(self, form):
        """The numeric precision of the network (protocols that run one: those with a GPU choice)."""
        form.addParam(PRECISION_PARAM, params.EnumParam, choices=list(PRECISIONS),
                      default=PRECISIONS.index(PRECISION_AUTO), expertLevel=params.LEVEL_ADVANCED, label="Precision",
                      help=PRECISION_FORM_HELP)

    def _precision(self):
        """The precision the form chose for the network's job."""
        return PRECISIONS[getattr(self, PRECISION_PARAM).get()]

    def _engineThreads(self):
        """The CPU threads the form gives each deepict job (0: every usable core)."""
        if self.modeParallel():
            return self.getBinThreads() if hasattr(self, BIN_THREADS_PARAM) else 0
        return self.numberOfThreads.get() if self.allowThreads else 0

    def runDeepict(self, job, name):
        """Write ``job`` (a :mod:`deepict.jobs` job) to extra/<name>.json and run ``deepict <step> --job FILE``
        as a job of this protocol (locally or through the queue).

        A step that runs a network gets the form's device (the GPU Scipion assigns, else the CPU). When
        the job fails, the step fails with the engine's own one-line error (``deepict <step>: error:
        ...``, read from the run's logs) instead of the shell's exit status.
        """
        useGpu = self._setDevice(job)
        path = jobs.write_job(job, os.path.abspath(self._getExtraPath(f"{name}.json")))
        logSizes = self._logSizes()
        cluster.remove_stale_status(path)
        forget_warnings(path)
        try:
            Plugin.runDeepict(self, job.step, f"--job {shlex.quote(path)}", useGpu=useGpu,
                              threads=self._engineThreads(), jobFile=path)
        except subprocess.CalledProcessError as exc:
            message = self._engineError(job.step, self._newLogText(logSizes))
            if message is None:
                raise
            raise DeepictJobError(message) from exc
        except Exception as exc:  # pyworkflow's plain Exception when the scheduler refuses the job
            if not str(exc).startswith(cluster.SUBMIT_FAILURE):
                raise
            raise DeepictJobError(cluster.refused_job_error(job.step, self._jobSubject(job, name), str(exc),
                                                            self.getSubmitDict())) from exc
        if self.useQueueForSteps():
            self._checkQueuedJob(job, path, self._jobSubject(job, name))

    def _setDevice(self, job):
        """Give a job that runs a network the form's device and precision; returns whether it uses a GPU."""
        if not jobs.runs_network(type(job)):
            return False
        useGpu = bool(self.useGpu.get())
        jobs.set_device(job, "auto" if useGpu else "cpu")
        job.precision = self._precision()
        return useGpu

    def runTraining(self, job, name):
        """Run a training ``job`` (``resume``: from its last finished epoch) as :meth:`runDeepict` does, after
        removing the last run's model and state where ``job`` changes more than a resumed training may."""
        self._setDevice(job)  # as runDeepict will: compared with the last run's job, which had them
        self._forgetUnresumableTraining(job, name)
        self.runDeepict(job, name)

    def _forgetUnresumableTraining(self, job, name):
        """A Continue may resume only where :data:`RESUMABLE_CHANGES` (and how it runs) changed: the engine refuses
        other sampling or loss settings, and a training resumed with other labels (a new radius) would be half one
        training and half another. Each case is said in the log."""
        previous = self._ranJob(name)
        if previous is None:
            return
        resumable = {f"training.{setting}" for setting in RESUMABLE_CHANGES} | {"precision", "threads"}
        changed = changedParameters(jobs.job_to_dict(previous), jobs.job_to_dict(job))
        fresh = [path for path in changed if path not in resumable]
        if fresh:
            self.info(f"Training from scratch: {', '.join(fresh)} changed since the last run, which a training cannot "
                      f"resume with (only {', '.join(RESUMABLE_CHANGES)} can change).")
            for path in (job.out, str(state_path(job.out))):
                if os.path.exists(path):
                    os.remove(path)
        elif changed:
            self.info(f"Resuming the training from its last finished epoch: {', '.join(changed)} changed.")

    def _ranJob(self, name):
        """The job that ran as extra/<name>.json (:meth:`runDeepict`), or None before it ran: what the methods
        describe, since the form may have been changed after the run (a Continue that reran nothing keeps it)."""
        path = self._getExtraPath(f"{name}.json")
        return jobs.read_job(path) if os.path.exists(path) else None

    @staticmethod
    def _jobSubject(job, name):
        """What a job works on, for its errors: its tomogram's file name, else its job file's."""
        tomogram = getattr(job, "tomogram", None)
        return os.path.basename(tomogram) if isinstance(tomogram, str) else f"{name}.json"

    def checkSummaryWarnings(self):
        """Scipion's run warnings (the run's box takes the warning colour and its summary lists them), with the
        warnings the engine printed in this run's jobs (:mod:`deepict.job_warnings`): a tomogram unlike the model's
        training data, a cluster or segmentation that fills the map, ..."""
        super().checkSummaryWarnings()
        for line in self._engineWarnings():
            if line not in self.summaryWarnings:
                self.addSummaryWarning(line)

    def _engineWarnings(self):
        """The warnings of this run's jobs: one line per message, naming the jobs (extra/<job>.json) that gave it."""
        jobsByMessage = {}
        for job, messages in warnings_in_folder(self._getExtraPath()).items():
            for message in messages:
                jobsByMessage.setdefault(message, []).append(job)
        lines = []
        for message, names in jobsByMessage.items():
            shown = ", ".join(names[:self.SUMMARY_WARNING_JOBS])
            more = len(names) - self.SUMMARY_WARNING_JOBS
            lines.append(f"{message} [{shown}{f' and {more} more' if more > 0 else ''}]")
        if len(lines) > self.SUMMARY_WARNINGS:
            lines = lines[:self.SUMMARY_WARNINGS] + [f"... and {len(lines) - self.SUMMARY_WARNINGS} more warnings: "
                                                     f"see the log and extra/*{WARNINGS_SUFFIX}"]
        return lines

    def _insertFunctionStep(self, func, *args, **kwargs):
        """Queued steps get their GPUs from the scheduler: pyworkflow's GPU slots (one per GPU of the form's
        list) must not make them wait for each other, or a 200-tomogram pick would run one job at a time."""
        if self.useQueueForSteps():
            kwargs["needsGPU"] = False
        index = super()._insertFunctionStep(func, *args, **kwargs)
        self._addDependencies(self._steps[index - 1])
        return index

    def _addDependencies(self, step):
        """Add what ``step`` depends on to the arguments Continue compares (not to those it is called with).

        pyworkflow compares each step alone: a step depends on the steps it waits for (else a pick whose
        tomograms reran with a new threshold kept its old output step, and its old output), and a first step
        on the form's values, unless the protocol's steps name their inputs themselves."""
        depends = [self._steps[index - 1].argsStr.get() for index in step._prerequisites]
        if not step._prerequisites and not self.STEPS_NAME_THEIR_INPUTS:
            depends = [self._formValues()]
        if depends:
            step.argsStr.set(json.dumps([json.loads(step.argsStr.get()), stableDigest(depends)]))

    def _formValues(self):
        """{parameter: value} of the form, pointers as their object and attribute, without :data:`RUN_PARAMS`."""
        values = {}
        for name, _ in self.getDefinition().iterParams():
            if name not in RUN_PARAMS:
                values[name] = self._formValue(getattr(self, name, None))
        return values

    @staticmethod
    def _formValue(attribute):
        if isinstance(attribute, PointerList):
            return [pointer.getUniqueId() for pointer in attribute]
        if isinstance(attribute, Pointer):
            return attribute.getUniqueId() if attribute.getObjValue() is not None else None
        return attribute.get() if attribute is not None else None

    def _stepStarted(self, step):
        self._unreportedSteps.add(id(step))
        super()._stepStarted(step)

    def _stepFinished(self, step):
        """A failed tomogram fails alone: the protocol fails once every other tomogram that can still run has
        run and been reported, with an error that names every failed step.

        pyworkflow stops at the first failed step: tomograms running beside it would finish unrecorded (and
        be redone by "continue"), the ones not yet started would not run at all, and steps that ended since
        its last look (two jobs killed for their memory together) would not be reported.
        """
        self._unreportedSteps.discard(id(step))
        if step.isFailed() and self._stepsLeftBeside(step):
            self._heldFailures.append(step)
            self._stepsSet.update(step)  # recorded as failed, so "continue" reruns it
            self._stepsSet.write()
            self.error(f"FAILED: {step.funcName.get()}, step {step._index}: {step.getErrorMessage()} (the other "
                       "tomograms go on; the protocol fails when they are done)")
            return True
        held = []
        if self._heldFailures and not self._stepsLeftBeside(step):
            held, self._heldFailures = self._heldFailures, []
            # pyworkflow counts as done the steps it is told about: this one, and the held failure that fails the
            # protocol when this one succeeded; the other held ones ended too, and count before its last words
            # ("PROTOCOL FAILED (done 2/3)")
            for _ in held[0 if step.isFailed() else 1:]:
                self._stepsDone.increment()
        doContinue = super()._stepFinished(step)
        if held:
            if doContinue:  # the last step succeeded: a held failure fails the protocol
                doContinue = super()._stepFinished(held[0])
            failed = held + [step] * step.isFailed()
            if len(failed) > 1:
                # pyworkflow fails the protocol with one step's error; each step keeps its own.
                message = f"{len(failed)} steps failed: " + "; ".join(each.getErrorMessage() for each in failed)
                self.setFailed(message)
                self.error(message)
        if not doContinue and self.useQueueForSteps():
            # The protocol fails only once none of its jobs runs (above): what killed ones left goes now, not at
            # "continue" (which would leave a dead job's of another node).
            cluster.remove_job_leftovers(self._getExtraPath())
        return doContinue

    def setAborted(self):
        """Scipion's Stop, after it cancelled the protocol's queue jobs (``Project.stopProtocol``): what they left
        (scratch folders, partial outputs, output locks) goes once they have left the queue, as after a failure
        (:meth:`_stepFinished`), not at Continue, which would leave those of a job killed on another node."""
        super().setAborted()
        if self.useQueue():
            self._removeEndedJobsLeftovers(cluster.STOP_WAIT_S)

    def setFailed(self, msg):
        """pyworkflow's failure; a protocol sent to the queue as one job (``QUEUE_FOR_JOBS = N``) that the scheduler
        killed is failed so by the GUI (or :func:`deepict_scipion.headless.launch_and_wait`) once its job has left
        the queue, and what the job left goes then too (its own failures, inside the job, leave nothing)."""
        super().setFailed(msg)
        if self.useQueue() and self.getQueueParams()[1].get(QUEUE_FOR_JOBS, "N") != "Y":
            self._removeEndedJobsLeftovers(0)

    def _removeEndedJobsLeftovers(self, wait_s):
        """Remove what the protocol's queue jobs left once the queue (hosts.conf's CHECK_COMMAND) no longer lists
        them, waiting up to ``wait_s`` seconds: a job still being killed could write again. Errors are logged:
        pyworkflow records the protocol's end after this."""
        host = self._queueHost()
        jobIds = [jobId for jobId in self.getJobIds() if jobId not in (None, UNKNOWN_JOBID)]

        def isListed(jobId):
            return _checkJobStatus(host, jobId) == STATUS_RUNNING

        try:
            if cluster.wait_until_gone(jobIds, isListed, timeout_s=wait_s):
                cluster.remove_job_leftovers(self._getExtraPath())
            elif wait_s:
                logger.warning(f"{self.getRunName()}: its queue jobs {jobIds} are still in the queue after {wait_s} s: "
                               "their scratch files stay until the protocol is continued")
        except Exception as exc:
            logger.warning(f"{self.getRunName()}: the scratch files of its queue jobs stay: {exc}")

    def _stepsLeftBeside(self, step):
        """Whether a step other than ``step`` is running, has ended but is not reported yet, or can still start
        (its prerequisites finished)."""
        steps = self._steps
        return any(other is not step and (other.isRunning() or id(other) in self._unreportedSteps or other.isNew()
                                          and all(steps[index - 1].isFinished() for index in other._prerequisites))
                   for other in steps)

    def _checkQueuedJob(self, job, jobFile, subject):
        """Fail the step as a local run would when its queued job failed or was killed by the scheduler
        (pyworkflow only waits for the job to leave the queue), with what that job's own logs say:
        ``subject`` (:meth:`_jobSubject`) names what it worked on."""
        status = cluster.read_exit_status(jobFile)
        if status == 0:
            return
        jobId = self._queueJobIds.get(threading.get_ident(), "?")
        texts = cluster.job_log_texts(self._newLogText({}), jobId)
        if status is None:
            raise DeepictJobError(cluster.killed_job_error(job.step, subject, jobId, texts))
        raise DeepictJobError(self._engineError(job.step, texts) or
                              f"deepict {job.step} ({subject}): the queue job {jobId} failed with exit status "
                              f"{status}: see its log in {self._getLogsPath()}.")

    def appendJobId(self, jobId):
        """pyworkflow's record of the active queue jobs (cancelled when the protocol is stopped); also kept
        per step thread, so that a step's error names its job."""
        super().appendJobId(jobId)
        self._queueJobIds[threading.get_ident()] = jobId

    @property
    def _queueJobIds(self):
        if "_deepictQueueJobs" not in self.__dict__:
            self.__dict__["_deepictQueueJobs"] = {}
        return self.__dict__["_deepictQueueJobs"]

    def getSubmitDict(self):
        """Scipion's queue parameters, with deepict's defaults: each queued job asks for the CPU threads
        of one deepict job (the form's threads per tomogram, not the protocol's parallel steps), and a
        memory request JOB_MEMORY left empty or 'auto' becomes the estimate for the largest input
        tomogram (:func:`deepict_scipion.cluster.memory_request_mb`)."""
        submit = super().getSubmitDict()
        if submit.get(QUEUE_FOR_JOBS) == "Y":
            submit["JOB_THREADS"] = submit["JOB_CORES"] = max(1, self._engineThreads())
        if cluster.wants_memory_estimate(submit.get(cluster.MEMORY_PARAMETER)):
            submit[cluster.MEMORY_PARAMETER] = str(cluster.memory_request_mb(self._largestTomogram()))
        return submit

    def _validateQueueParams(self):
        """A memory the scheduler would refuse, or more CPUs than its nodes have, said before any job is submitted
        (the queue dialog comes first)."""
        if not self.useQueue():
            return []
        errors = [cluster.memory_parameter_error(self.getQueueParams()[1].get(cluster.MEMORY_PARAMETER)),
                  self._queueThreadsError()]
        return [error for error in errors if error]

    def _queueThreadsError(self):
        """Why each queue job asks for more CPUs than a node of its SLURM partition has, or None (another
        scheduler, or one sinfo does not know): SLURM would keep it pending forever without a word."""
        host = self._queueHost()
        if host is None or "sbatch" not in (host.getSubmitCommand() or ""):
            return None
        submit = self.getSubmitDict()
        label = self.getDefinition().getParam(self._queueThreadsParameter(submit)).label.get()
        partition = submit.get("JOB_QUEUE", "")
        return cluster.threads_error(int(submit[cluster.THREADS_PARAMETER]), cluster.partition_cpus(partition),
                                     label, partition)

    def _queueHost(self):
        """The execution host's configuration (hosts.conf), or None: pyworkflow sets it only when it launches the
        protocol, and the GUI's form and a script (:func:`deepict_scipion.headless.launch_and_wait`) validate it
        before that, so it is taken from the project then."""
        if getattr(self, "hostConfig", None) is None and self.getProject() is not None:
            self.setHostConfig(self.getProject().getHostConfig(self.getHostName()))
        return getattr(self, "hostConfig", None)

    def _queueThreadsParameter(self, submit):
        """The form's parameter that sets the CPUs of each queue job (JOB_THREADS): a step's engine threads when
        each step is a job (:meth:`getSubmitDict`), else pyworkflow's threads of the whole protocol."""
        if submit.get(QUEUE_FOR_JOBS) == "Y" and self.modeParallel() and hasattr(self, BIN_THREADS_PARAM):
            return BIN_THREADS_PARAM
        return "numberOfThreads"

    def _largestTomogram(self):
        """The (x, y, z) size of the largest input tomogram, or None when the protocol has none.

        Read once (first from the main thread, when the queue executor is made): the steps' threads
        ask again and must not open the set's database."""
        if "_deepictLargestTomogram" not in self.__dict__:
            pointer = getattr(self, "inputTomograms", None)
            tomograms = pointer.get() if pointer is not None else None
            try:
                sizes = [tomo.getDim() for tomo in tomograms.iterItems()] if tomograms is not None else []
            except (OSError, ValueError, struct.error):
                sizes = []  # an unreadable tomogram: its step fails with the engine's error, not the launch
            sizes = [size for size in sizes if size]
            self.__dict__["_deepictLargestTomogram"] = (
                max(sizes, key=lambda size: size[0] * size[1] * size[2]) if sizes else None)
        return self.__dict__["_deepictLargestTomogram"]

    def _newLogText(self, logSizes):
        """What the run's logs got after ``logSizes`` (see :meth:`_logSizes`)."""
        return run_logs.text_since(self._getLogsPath("*"), logSizes)

    def _logSizes(self):
        """{log file: size} of the run's logs (queue jobs write their own logs in the same folder)."""
        return run_logs.log_sizes(self._getLogsPath("*"))

    def _engineError(self, subcommand, texts):
        """The last ``deepict <subcommand>: error:`` line in ``texts`` (what the step's logs got), or None."""
        marker = f"deepict {subcommand}: error:"
        found = None
        for text in texts:
            for line in text.splitlines():
                if marker in line:
                    found = line[line.index(marker):].strip()
        return found

    def _modelInfoPath(self, name="model_info.json"):
        return self._getExtraPath(name)

    def _existingInfo(self):
        """The output model's description written by :meth:`describeModel`, or None before it exists."""
        path = self._modelInfoPath()
        return json.load(open(path)) if os.path.exists(path) else None

    def describeModel(self, modelFile, jsonFile):
        """Run ``deepict model-info`` and return its JSON description of a model file."""
        self.runDeepict(jobs.ModelInfoJob(model=modelFile, json=jsonFile), "model-info")
        with open(jsonFile) as handle:
            return json.load(handle)

    # -------------------------------- validation helpers --------------------------------------
    @staticmethod
    def _sameSampling(a, b):
        """Whether two voxel sizes are both known and the same sampling."""
        return bool(a and b) and not voxel_sizes_differ(a, b)

    def _getCiteText(self, cite, useKeyLabel=False):
        # pyworkflow ends a citation link with a space, which doubled the space after it in the methods text
        # and put one before a full stop.
        return super()._getCiteText(citeWithLink(cite), useKeyLabel).rstrip()

    def validate(self):
        """pyworkflow's checks, then :meth:`_validate` and the queue parameters; a message both give (an empty
        input) is listed once."""
        return list(dict.fromkeys(super().validate() + self._validateQueueParams()))

    def _formLabel(self, pointer):
        """The form's label of the parameter ``pointer`` is, or None (a pointer inside a list)."""
        for name, param in self.getDefinition().iterParams():
            if getattr(self, name, None) is pointer:
                return param.label.get()
        return None

    def _validateNotEmpty(self, pointer, label):
        obj = pointer.get()
        if obj is None:  # in pyworkflow's words, so that a required input it reports too is said once
            return [f"*{self._formLabel(pointer) or label}* cannot be EMPTY."]
        if hasattr(obj, "getSize") and obj.getSize() == 0:
            return [f"{label} ({obj.getNameId() if hasattr(obj, 'getNameId') else obj}) is empty: "
                    "select a set with at least one item."]
        return []

    def _validateTomograms(self, pointer, label):
        """:meth:`_validateNotEmpty`, and tomograms, not masks or probability maps: a SetOfTomoMasks is a
        SetOfTomograms, so Scipion's choosers offer them where tomograms are asked for."""
        return self._validateNotEmpty(pointer, label) or self._tomogramsNotMasksErrors(pointer.get(), label)

    @staticmethod
    def _tomogramsNotMasksErrors(tomograms, label):
        if not isinstance(tomograms, SetOfTomoMasks):
            return []
        kind = "probability maps" if isMarked(tomograms, PROBABILITY_MAPS_ATTRIBUTE) else "masks"
        return [f"{label}: {tomograms.getNameId()} are {kind}, not tomograms: choose the imported (or equalized) "
                "tomograms."]

    def _validateModelSampling(self, model, tomograms, label="input tomograms"):
        """Tomograms off the model's voxel size are rescaled by the engine, within MAX_RESCALE_FACTOR either way."""
        modelSize, tomoSize = model.getVoxelSize(), tomograms.getSamplingRate()
        if modelSize and tomoSize and not rescale_within_limit(tomoSize, modelSize):
            return [f"The model was trained at {modelSize:.2f} Å/voxel but the {label} have {tomoSize:.2f} Å/voxel: "
                    f"a rescale by {rescale_factor(tomoSize, modelSize):.3g}, more than the {MAX_RESCALE_FACTOR:g}x "
                    f"DeePiCt does on the fly. Bin or rescale the tomograms to within {MAX_RESCALE_FACTOR:g}x of "
                    f"{modelSize:.2f} Å/voxel first (e.g. with an IMOD or Xmipp resize protocol), or train a model "
                    "at this voxel size." + (TYPED_VOXEL_SIZE_HINT if self._isCheckpoint(model) else "")]
        return []

    @staticmethod
    def _isCheckpoint(model):
        """Whether ``model`` was imported from a DeePiCt checkpoint, whose voxel size was typed at its import."""
        return (model.getSource() or "").startswith(PUBLISHED_SOURCE_PREFIX)

    def _rescaleSummary(self, model, tomograms):
        """The summary line saying that the tomograms are rescaled to the model's voxel size (or nothing)."""
        if model is None or tomograms is None:
            return []
        modelSize, tomoSize = model.getVoxelSize(), tomograms.getSamplingRate()
        if not modelSize or not tomoSize or fits_model_voxel_size(tomoSize, modelSize):
            return []
        return [f"The tomograms ({tomoSize:.2f} Å/voxel) are rescaled to the model's {modelSize:.2f} Å/voxel for the "
                f"network (factor {rescale_factor(tomoSize, modelSize):.3g}); the results are at the tomograms' own "
                "sampling rate."]

    def _addEqualizeParam(self, form, jobPath):
        """The checkbox that equalizes each tomogram to the model's reference spectrum (job field ``jobPath``)."""
        form.addParam("equalize", params.BooleanParam, default=self._default(jobPath) != "off",
                      label="Equalize to the model's reference spectrum",
                      help="Models trained on spectrum-equalized tomograms (the training protocols' 'Equalize to "
                           "the tomograms' mean spectrum', or the equalize spectrum protocol) store their reference "
                           "spectrum: each tomogram is then equalized to it (with the training's low-pass) before "
                           "prediction, on the fly (a temporary file). Models without one use the tomograms as they "
                           "are. Switch it off only for tomograms already equalized to the same reference.")

    def _addTrainingVoxelSizeParam(self, form):
        """The training protocols' optional "Train at voxel size" (the job's ``training_voxel_size``)."""
        form.addParam("trainingVoxelSize", params.FloatParam, allowsNull=True, expertLevel=params.LEVEL_ADVANCED,
                      label="Train at voxel size (Å, optional)",
                      help="Empty: the tomograms' sampling rate. Otherwise the tomograms are rescaled to it with "
                           "their labels for the training, and the model works at it (pick / segment rescale new "
                           "tomograms to it, within 4x).")

    def _validateTrainingVoxelSize(self, tomograms):
        """The "Train at voxel size" must be positive and within MAX_RESCALE_FACTOR of the tomograms'."""
        trainingSize, sampling = self.trainingVoxelSize.get(), tomograms.getSamplingRate()
        if trainingSize is not None and not (trainingSize > 0 and (not sampling or rescale_within_limit(
                sampling, trainingSize))):
            return [f"Train at voxel size: {trainingSize:g} Å must be positive and within "
                    f"{MAX_RESCALE_FACTOR:g}x of the tomograms' {sampling:.2f} Å/voxel (or leave it empty)."]
        return []

    @staticmethod
    def _binaryMaskErrors(masks, label):
        """Probability maps (:data:`PROBABILITY_MAPS_ATTRIBUTE`) where binary masks are needed: every voxel above 0
        would count (a context of the whole tomogram, a filament everywhere)."""
        if masks is None or not isMarked(masks, PROBABILITY_MAPS_ATTRIBUTE):
            return []
        return [f"{label}: these are probability maps, not binary masks: choose the 'segmentations' output of a "
                "segment 3D or segment compartments 2D run (or threshold the maps first)."]

    def _validateMasksFor(self, masks, tomograms, label, anyBinning=False, binary=True):
        """Masks must have their tomogram's sampling rate and size (``anyBinning``: any sampling rate over the
        tomogram's extent), every tomogram needs one, and ``binary`` masks must not be probability maps."""
        errors = self._binaryMaskErrors(masks, label) if binary else []
        maskSampling, tomoSampling = masks.getSamplingRate(), tomograms.getSamplingRate()
        unknown = [name for name, sampling in (("the masks", maskSampling), ("the tomograms", tomoSampling))
                   if not sampling]
        if unknown:
            return [f"{label}: the sampling rate of {' and of '.join(unknown)} is unknown: set it when importing "
                    "them (Å/voxel)."]
        if not anyBinning and not self._sameSampling(maskSampling, tomoSampling):
            return [f"{label} have {maskSampling:.2f} Å/voxel but the tomograms {tomoSampling:.2f} Å/voxel: give "
                    "masks made on these tomograms, at the same binning."]
        tomoDims = {tomogramKey(t): t.getDim() for t in tomograms.iterItems()}
        for key, maskFile in self.masksByKey(masks, tomograms).items():
            mask = next((m for m in masks.iterItems() if m.getFileName() == maskFile), None)
            if mask is None:
                continue
            maskDim, tomoDim = tuple(mask.getDim() or ()), tuple(tomoDims[key] or ())
            if anyBinning and not self._sameExtent(maskDim, maskSampling, tomoDim, tomoSampling):
                errors.append(f"{label}: the mask {maskFile} covers {self._extent(maskDim, maskSampling)} Å but its "
                              f"tomogram {key} {self._extent(tomoDim, tomoSampling)} Å (x, y, z): give masks made on "
                              "these tomograms (at any binning).")
            elif not anyBinning and maskDim != tomoDim:
                errors.append(f"{label}: the mask {maskFile} has size {mask.getDim()} but its tomogram {key} has "
                              f"{tomoDims[key]} (x, y, z): give masks made on these tomograms, at the same binning.")
        maskKeys = {tomogramKey(m) for m in masks.iterItems()} | {
            baseName(m.getVolName()) for m in masks.iterItems() if m.getVolName()}
        missing = [tomogramKey(t) for t in tomograms.iterItems() if tomogramKey(t) not in maskKeys
                   and baseName(t.getFileName()) not in maskKeys]
        if missing:
            errors.append(f"{label}: no mask for tomogram(s) {', '.join(missing)}.")
        return errors

    @staticmethod
    def _sameExtent(dimA, samplingA, dimB, samplingB):
        """Whether two volumes span the same length along every axis, to within a voxel of the coarser one
        (binning rounds an odd size)."""
        return len(dimA) == len(dimB) == 3 and all(
            abs(a * samplingA - b * samplingB) < max(samplingA, samplingB) for a, b in zip(dimA, dimB))

    @staticmethod
    def _extent(dim, sampling):
        return " x ".join(f"{n * sampling:.0f}" for n in dim)

    def masksByKey(self, masks, tomograms):
        """{tomogram key: mask file} matching masks to tomograms by tsId, else by tomogram file name."""
        byFile = {baseName(m.getVolName()): m.getFileName() for m in masks.iterItems() if m.getVolName()}
        byKey = {tomogramKey(m): m.getFileName() for m in masks.iterItems()}
        result = {}
        for tomo in tomograms.iterItems():
            key = tomogramKey(tomo)
            result[key] = byKey.get(key) or byFile.get(baseName(tomo.getFileName()))
        return result



class ProtDeepictInferenceBase(ProtDeepictBase):
    """Common parts of picking and 3D segmentation: the form, per-tomogram steps, validation.

    Form: Input (tomograms, model, class, equalization), Post-processing (clusters, context),
    Compute (inference box; threads and GPU in the header).
    """

    stepsExecutionMode = STEPS_PARALLEL
    STEPS_NAME_THEIR_INPUTS = True  # each tomogram's job
    #: What the clusters are, for the form's labels ("Particle", "Segment").
    _clusterName = "Cluster"

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputTomograms", params.PointerParam, pointerClass="SetOfTomograms", important=True,
                      label="Tomograms",
                      help="Tomograms at any voxel size within 4x of the model's (13.48 Å/voxel for the published "
                           "networks): those more than 5 % off are rescaled to the model's voxel size on the fly, and "
                           "the outputs are given at the tomograms' own voxel size.")
        form.addParam("inputModel", params.PointerParam, pointerClass="DeepictModel", important=True,
                      label="DeePiCt 3D model",
                      help="A model from 'train 3D network' or 'import model' (published DeePiCt networks).")
        form.addParam("className", params.StringParam, default="", label="Class (multi-class models)",
                      help="Which class of a multi-class model to use, by name (e.g. 'fas'). Empty: the model's "
                           "first class.")
        self._addEqualizeParam(form, "inference.equalize")

        form.addSection(label="Post-processing")
        form.addParam("threshold", params.FloatParam, allowsNull=True, label="Probability threshold",
                      help="Voxels with a network probability above it form the clusters, in [0, 1). Empty: the "
                           "model's suggestion (calibrated on the validation data after training for one-class "
                           "particle models, else 0.5; with test-time rotations a calibrated threshold is taken "
                           f"{ROTATED_THRESHOLD_SHIFT:g} lower, unless that joins most of the map into one "
                           "cluster). Lower it to find more (and fainter) objects.")
        line = form.addLine(f"{self._clusterName} size (voxels)",
                            help="Clusters with fewer voxels than min or more than max are discarded. Empty: the "
                                 "model's suggestion (min) and no limit (max). A particle model trained for one "
                                 "class suggests the minimum size that gave the best F1 on its validation data "
                                 "(see the training protocol's log); a whole 80S ribosome at 13.48 Å/voxel is about "
                                 "1500 voxels.")
        line.addParam("minSize", params.IntParam, allowsNull=True, label="min")
        line.addParam("maxSize", params.IntParam, allowsNull=True, label="max")
        self._defineClusterParams(form)
        form.addParam("connectivity", params.EnumParam, choices=["1 (faces)", "2 (edges)", "3 (corners)"],
                      default=self._choiceIndex("postprocess.connectivity"),
                      expertLevel=params.LEVEL_ADVANCED, label="Cluster connectivity",
                      help="Which neighbouring voxels join a cluster: 1 = the 6 face neighbours (DeePiCt's choice), "
                           "2 = also the 12 edge neighbours, 3 = all 26.")
        form.addParam("border", params.IntParam, default=self._default("postprocess.border")[0],
                      expertLevel=params.LEVEL_ADVANCED, label="Ignore border (voxels)",
                      help="Voxels this close to a face of the tomogram are ignored (e.g. edges of the "
                           "reconstruction with artefacts).")
        group = form.addGroup("Context")
        group.addParam("contextMasks", params.PointerParam, pointerClass="SetOfTomoMasks", allowsNull=True,
                       label="Context masks (optional)",
                       help="Masks of the same tomograms (e.g. the cytosol from 'segment compartments 2D') that "
                            "restrict the result, at any binning: a mask of a binned tomogram is resampled to the "
                            "tomogram's voxels. Empty: no restriction.")
        group.addParam("contextMode", params.EnumParam, choices=list(CONTEXT_MODES),
                       default=self._choiceIndex("postprocess.context_mode"),
                       condition="contextMasks", label="Context mode",
                       help="intersection: only voxels inside the mask (ribosomes in the cytosol); contact: whole "
                            "clusters within the distance of the mask (membranes touching the cytosol); "
                            "colocalization: cluster centres within the distance of the mask (NPCs near the nuclear "
                            "envelope).")
        group.addParam("contextDistance", params.FloatParam, default=self._default("postprocess.context_distance"),
                       condition="contextMasks", label="Context distance (voxels)",
                       help="For contact and colocalization: how far from the mask a cluster may be (0: touching "
                            "or inside).")
        form.addParam("keepProbabilityMaps", params.BooleanParam, default=False, label="Keep probability maps",
                      help="Also output the network's probability maps (float32, one per tomogram, as large as the "
                           "tomograms): to choose a threshold, or for 'evaluate'.")

        form.addSection(label="Compute")
        form.addParam("window", params.IntParam, default=self._default("inference.window"),
                      label="Inference box (voxels)",
                      help="The tomogram is predicted in boxes of this side, with blended overlaps. Larger boxes "
                           "are faster but need more (GPU) memory: lower it (e.g. 64) if the GPU runs out of "
                           "memory. Must be divisible by 2^depth of the network (4 for depth 2).")
        form.addParam("margin", params.IntParam, default=self._default("inference.margin"),
                      expertLevel=params.LEVEL_ADVANCED, label="Blended margin (voxels)",
                      help="Near a box's faces the network sees the least context and predicts worst. Neighbouring "
                           "boxes therefore overlap by twice this margin, and over it each box's prediction is "
                           "weighted down linearly, so the boxes blend into one map without seams. A wider margin "
                           "smooths more at the cost of more boxes (time); 0 joins the boxes unblended. Must be "
                           "less than half the inference box.")
        form.addParam("batchSize", params.IntParam, default=self._default("inference.batch_size"),
                      expertLevel=params.LEVEL_ADVANCED, label="Boxes per batch",
                      help="Boxes predicted together; more use more memory.")
        form.addParam("testTimeMirrors", params.BooleanParam, default=self._default("inference.test_time_mirrors"),
                      expertLevel=params.LEVEL_ADVANCED, label="Test-time mirrors",
                      help=self._help("inference.test_time_mirrors"))
        form.addParam("testTimeRotations", params.BooleanParam, default=self._default("inference.test_time_rotations"),
                      expertLevel=params.LEVEL_ADVANCED, label="Test-time rotations",
                      help=self._help("inference.test_time_rotations"))
        self._defineComputeParams(form)

    def _defineClusterParams(self, form):
        """Post-processing parameters of one kind of output (picking adds distance and box size)."""

    def _insertAllSteps(self):
        self.tomos = tomogramsByKey(self.inputTomograms.get())
        masks = self.masksByKey(self.contextMasks.get(), self.inputTomograms.get()) if self.contextMasks.get() else {}
        # prerequisites=[]: the tomograms' steps are independent (pyworkflow chains each to the previous by default)
        # The job's digest: Continue reruns the tomograms whose job changed (a new threshold, model, ...)
        runs = [self._insertFunctionStep(self.inferenceStep, key, masks.get(key),
                                         stableDigest(jobs.job_to_dict(self._inferenceJob(key, masks.get(key)))),
                                         prerequisites=[], needsGPU=True)
                for key in self.tomos]
        self._insertFunctionStep(self.createOutputStep, prerequisites=runs, needsGPU=False)

    def inferenceStep(self, key, contextFile, jobDigest=None):
        """``jobDigest`` is only compared by Continue (see :meth:`_insertAllSteps`)."""
        self.runDeepict(self._inferenceJob(key, contextFile), self._inferenceJobName(key))

    def _inferenceJobName(self, key):
        """The name of tomogram ``key``'s job: its file is extra/<name>.json (:meth:`runDeepict`)."""
        return f"{self._jobClass.step}_{key}"

    def _inferenceJob(self, key, contextFile):
        """The job of one tomogram, from the form."""
        return self._jobClass(
            model=os.path.abspath(self.inputModel.get().getFileName()),
            tomogram=os.path.abspath(self.tomos[key].getFileName()), out=os.path.abspath(self._outputPath(key)),
            class_name=self.className.get() or None, context=os.path.abspath(contextFile) if contextFile else None,
            probability_map=os.path.abspath(self._probabilityPath(key)) if self.keepProbabilityMaps.get() else None,
            postprocess=jobs.PostprocessOptions(
                threshold=self.threshold.get(), min_size=self.minSize.get(), max_size=self.maxSize.get(),
                connectivity=self._connectivity(), border=[self.border.get()],
                context_mode=CONTEXT_MODES[self.contextMode.get()], context_distance=self.contextDistance.get()),
            inference=jobs.InferenceOptions(
                window=self.window.get(), margin=self.margin.get(), batch_size=self.batchSize.get(),
                test_time_mirrors=self.testTimeMirrors.get(), test_time_rotations=self.testTimeRotations.get(),
                voxel_size=self.inputTomograms.get().getSamplingRate(),
                equalize="on" if self._equalizes() else "off"))

    def _connectivity(self):
        return choices_of(self._jobClass, "postprocess.connectivity")[self.connectivity.get()]

    def _outputPath(self, key):
        """The file the job of tomogram ``key`` writes (picks, segmentation)."""
        raise NotImplementedError

    def _probabilityPath(self, key):
        return self._getExtraPath(f"{key}_probability.mrc")

    def _probabilityMaps(self):
        maps = SetOfTomoMasks.create(self._getPath(), suffix="probabilities")
        maps.copyInfo(self.inputTomograms.get())
        mark(maps, PROBABILITY_MAPS_ATTRIBUTE)
        for key, tomo in self.tomos.items():
            maps.append(newTomoMask(tomo, self._probabilityPath(key)))
        return maps

    def _defineResults(self, outputs):
        """Register the outputs (plus the probability maps when kept), derived from tomograms and model."""
        if self.keepProbabilityMaps.get():
            outputs["probabilityMaps"] = self._probabilityMaps()
        self._defineOutputs(**outputs)
        for output in outputs.values():
            self._defineSourceRelation(self.inputTomograms, output)
            self._defineSourceRelation(self.inputModel, output)

    def _networkForMethods(self):
        """How the methods text names the model: one network, or an ensemble of several."""
        members = self.inputModel.get().getMemberCount() if self.inputModel.get() is not None else 0
        if members:
            return f"an ensemble of {members} DeePiCt 3D U-Nets [deTeresaTrueba2023] (their probability maps averaged)"
        return "a DeePiCt 3D U-Net [deTeresaTrueba2023]"

    def _className(self, job=None):
        """The class of ``job`` (one that ran: :meth:`_ranInferenceJob`), else the form's; empty: the model's first."""
        model = self.inputModel.get()
        chosen = job.class_name if job is not None else self.className.get()
        return chosen or (model.getClasses() or [DEFAULT_CLASS_NAME])[0]

    def _ranInferenceJob(self):
        """The job a tomogram ran with, or None before any ran: the methods describe it, not a form changed since
        (each tomogram's job has the form's values of the run that made it)."""
        tomograms = self.inputTomograms.get()
        for key in (tomogramsByKey(tomograms) if tomograms is not None else ()):
            job = self._ranJob(self._inferenceJobName(key))
            if job is not None:
                return job
        return None

    def _classText(self, job=None):
        """The class (of ``job``, else of the form) for a sentence, as the model names it: "class 'ribo'" (the
        published networks' labels are abbreviations), or nothing for a one-class model's default name."""
        name = self._className(job)
        return "" if name == DEFAULT_CLASS_NAME else f"class '{name}'"

    def _probabilityMapsSummary(self, maps):
        """What the kept probability maps are, where."""
        classText = self._classText()
        return (f"The network's probability maps{f' of {classText}' if classText else ''} (before thresholding), "
                f"one per tomogram ({counted(maps.getSize(), 'map')}): output 'probabilityMaps', files "
                f"{os.path.join(self._getExtraPath(), '<tsId>_probability.mrc')}.")

    def _postprocessForMethods(self, job=None):
        """The clustering ``job`` (one that ran: :meth:`_ranInferenceJob`; else the form) used, in words: its
        values, else the model's suggestions (the values the engine takes for fields left empty)."""
        model = self.inputModel.get()
        suggested = model.getPostprocess() if model is not None else {}
        fallback = ClusterParameters()
        if job is not None:
            threshold, minSize, maxSize = job.postprocess.threshold, job.postprocess.min_size, job.postprocess.max_size
            rotations = job.inference.test_time_rotations
        else:
            threshold, minSize, maxSize = self.threshold.get(), self.minSize.get(), self.maxSize.get()
            rotations = self.testTimeRotations.get()
        if threshold is None:
            threshold = suggested.get("threshold", fallback.threshold)
            shifted = (f", taken {ROTATED_THRESHOLD_SHIFT:g} lower with test-time rotations unless that joins the "
                       "map into one cluster" if rotations and "threshold" in suggested else "")
            thresholdText = f"probability threshold {threshold:.3g} (the model's suggestion{shifted})"
        else:
            thresholdText = f"probability threshold {threshold:.3g}"
        if minSize is None:
            minSize = suggested.get("min_size", fallback.min_size)
        parts = [thresholdText, f"minimum {self._clusterName.lower()} size "
                                f"{'none' if minSize is None else counted(minSize, 'voxel')}"]
        if maxSize is not None:
            parts.append(f"maximum size {counted(maxSize, 'voxel')}")
        return parts

    def _rescaleForMethods(self):
        """The on-the-fly rescaling to the model's voxel size, for the methods text (or nothing)."""
        model, tomograms = self.inputModel.get(), self.inputTomograms.get()
        if model is None or tomograms is None:
            return ""
        modelSize, tomoSize = model.getVoxelSize(), tomograms.getSamplingRate()
        if not modelSize or not tomoSize or fits_model_voxel_size(tomoSize, modelSize):
            return ""
        return (f" The tomograms ({tomoSize:.2f} Å/voxel) were rescaled to the network's {modelSize:.2f} Å/voxel "
                "for the prediction.")

    def _publishedWarning(self):
        """The engine's warning about a published network without reference spectrum, or None."""
        model = self.inputModel.get()
        return model is not None and published_spectrum_warning(model.getSource(), model.hasSpectrum()) or None

    def _publishedSummary(self):
        """One line pointing at the published network's warning, shown in full once, among the WARNINGS (not on a
        failed run, where there are no results to warn about)."""
        if not self._publishedWarning() or self.isFailed() or self.isAborted():
            return []
        return ["The model is a published DeePiCt network without a reference spectrum: see WARNINGS."]

    def checkSummaryWarnings(self):
        """The run's warnings (:meth:`ProtDeepictBase.checkSummaryWarnings`) with the published network's once: the
        engine's, or before the run the protocol's own; none on a failed run."""
        super().checkSummaryWarnings()
        warning = self._publishedWarning()
        if not warning:
            return
        if self.isFailed() or self.isAborted():
            self.summaryWarnings[:] = [line for line in self.summaryWarnings if warning not in line]
        elif not any(warning in line for line in self.summaryWarnings):
            self.addSummaryWarning(f"The model: {warning}")

    def _validate(self):
        errors = self._validateTomograms(self.inputTomograms, "Input tomograms")
        errors += self._validateNotEmpty(self.inputModel, "DeePiCt model")
        if errors:
            return errors
        model, tomograms = self.inputModel.get(), self.inputTomograms.get()
        if model.getKind() != "3d":
            errors.append(f"{model} is a {str(model.getKind()).upper()} model: choose a 3D model (from 'train 3D "
                          "network' or 'import model').")
        if self.className.get() and self.className.get() not in model.getClasses():
            errors.append(f"The model has no class '{self.className.get()}'; its classes are "
                          f"{', '.join(model.getClasses())}.")
        errors += self._validateModelSampling(model, tomograms)
        if self.contextMasks.get() is not None:
            # Scipion fills it with the selected run's maps: say where the optional field is, to clear it.
            errors += self._validateMasksFor(self.contextMasks.get(), tomograms,
                                             "Context masks (optional, Post-processing tab; clear it for none)",
                                             anyBinning=True)
        return errors + self._validateClusterParams(model) + self._validateCompute(model)

    def _validateClusterParams(self, model):
        """The engine's own rules for the post-processing, applied to the values it would use."""
        suggested, fallback = model.getPostprocess(), ClusterParameters()

        def value(param, key):
            return param.get() if param.get() is not None else suggested.get(key, getattr(fallback, key))

        clusters = ClusterParameters(
            threshold=value(self.threshold, "threshold"), min_size=value(self.minSize, "min_size"),
            max_size=value(self.maxSize, "max_size"), connectivity=self._connectivity(),
            context_mode=CONTEXT_MODES[self.contextMode.get()],
            context_distance=self.contextDistance.get() or fallback.context_distance)
        errors = []
        try:
            clusters.validate()
        except DeepictError as exc:
            errors.append(f"Post-processing: {exc}. Fields left empty take the model's values: "
                          f"{self._describePostprocess(suggested)}.")
        for param, label in ((self.minSize, "The minimum size"), (self.maxSize, "The maximum size"),
                             (self.border, "The border")):
            if param.get() is not None and param.get() < 0:
                errors.append(f"Post-processing: {label.lower()} must not be negative (got {param.get()}).")
        return errors

    @staticmethod
    def _describePostprocess(values):
        """A model's stored post-processing in the form's words."""
        described = []
        for key, label, unit in (("threshold", "threshold", ""), ("min_size", "minimum size", " voxels"),
                                 ("max_size", "maximum size", " voxels"),
                                 ("min_distance", "duplicate distance", " voxels")):
            if key in values:
                value = values[key]
                described.append(f"{label} {'none' if value is None else f'{value:g}{unit}'}")
        return ", ".join(described) or "none stored (the engine's defaults)"

    def _validateCompute(self, model):
        errors = []
        window, depth = self.window.get(), model.getDepth()
        if window is None or window < 1:
            errors.append(f"Compute: the inference box must be a positive number of voxels (got {window}).")
        elif depth and window % 2 ** depth:
            # The U-Net halves the box depth times; the engine refuses other sizes at run time.
            lower = window - window % 2 ** depth
            errors.append(f"Compute: the inference box ({window}) must be divisible by 2^depth = {2 ** depth} for "
                          f"this network (depth {depth}): use e.g. {lower or 2 ** depth} or {lower + 2 ** depth}.")
        errors += self._validateMargin()
        if self.batchSize.get() is None or self.batchSize.get() < 1:
            errors.append(f"Compute: boxes per batch must be at least 1 (got {self.batchSize.get()}).")
        return errors

    def _validateMargin(self):
        """The engine's rule for the blended margin (it refuses the run otherwise, after the job has started)."""
        window, margin = self.window.get(), self.margin.get()
        if margin is None:
            return ["Compute: give the blended margin in voxels (0: no blending)."]
        if window is None or window < 1:
            return []  # said above
        try:
            check_box_margin(window, margin)
        except DeepictError as exc:
            return [f"Compute: blended margin: {exc}; give a margin below {(window + 1) // 2} voxels or a larger "
                    "inference box."]
        return []

    def _equalizes(self):
        """Whether the tomograms are equalized to the model's reference spectrum before prediction."""
        model = self.inputModel.get()
        return bool(self.equalize.get() and model is not None and model.hasSpectrum())

    def _warnings(self):
        model, tomograms = self.inputModel.get(), self.inputTomograms.get()
        if model is None or not model.hasSpectrum() or self.equalize.get():
            return []
        if tomograms is not None and equalizedReference(tomograms):
            return []  # from the equalize spectrum protocol: presumably to the same reference
        return ["This model was trained on spectrum-equalized tomograms but equalization is switched off: unless "
                "the input tomograms are already equalized to the model's reference spectrum, switch 'Equalize to "
                "the model's reference spectrum' on for the results the model was trained to give."]
