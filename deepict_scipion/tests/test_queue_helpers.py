"""The queue helpers without a scheduler (the queue itself: deepict_scipion/tests/cluster, scripts/test-cluster.sh):
memory requests, a queued command's exit status, the scheduler's reason in a killed job's log, and the
GPUs a queued job may see."""

import os
import subprocess

from deepict_scipion import cluster


def test_memory_request_covers_the_measured_peak_with_headroom():
    measured_mb = 2.1 * 1000 ** 3 / 2 ** 20  # picking 928 x 928 x 464 peaked at 2.1 GB
    request = cluster.memory_request_mb((928, 928, 464))
    assert measured_mb * 1.4 < request < measured_mb * 1.7
    assert request % 256 == 0
    assert cluster.memory_request_mb((64, 64, 32)) == cluster.MIN_MEMORY_MB
    assert cluster.memory_request_mb(None) == cluster.MIN_MEMORY_MB


def test_a_queued_command_writes_its_exit_status(tmp_path):
    job = str(tmp_path / "pick 1.json")
    for code in (0, 3):
        cluster.remove_stale_status(job)
        assert cluster.read_exit_status(job) is None
        script = cluster.JOB_BANNER + "true " + cluster.queued_arguments(f"&& (exit {code})", job)
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                                env=dict(os.environ, SLURM_JOB_ID="42", CUDA_VISIBLE_DEVICES="1"))
        assert result.returncode == code
        assert "deepict queue job 42 on" in result.stdout and "CUDA_VISIBLE_DEVICES=1" in result.stdout
        assert "deepict queue job 42 on" in result.stderr  # marks where the job's lines start in its error log
        assert cluster.read_exit_status(job) == code


def test_a_jobs_lines_are_told_from_other_jobs_and_from_an_earlier_job_of_the_same_log():
    banner = "deepict queue job {} on vm: 1 CPUs, CUDA_VISIBLE_DEVICES=unset\n"
    memory = "slurmstepd-vm: error: StepId={}.batch exceeded memory limit (228003840 > 104857600), being killed\n"
    reused = banner.format(7) + memory.format(7) + banner.format(9) + "epoch 1/10\n"  # a continued run's log name
    other = banner.format(8) + memory.format(8)
    assert cluster.job_log_texts([reused, other], 9) == [banner.format(9) + "epoch 1/10\n"]
    assert cluster.job_log_texts([reused, other], 8) == [other]
    assert cluster.job_log_texts([reused, other], 10) == []  # never started: no banner


#: SLURM's words in the error logs of jobs it ended (slurm-wlm 22, scripts/slurm-up.sh): at the time limit, over
#: the memory (it cancels the job too), and cancelled by a user (scancel).
SLURM_TIME = "slurmstepd-vm: error: *** JOB 17 ON vm CANCELLED AT 2026-11-28T12:00:00 DUE TO TIME LIMIT ***"
SLURM_MEMORY = ("slurmstepd-vm: error: StepId=547.batch exceeded memory limit (228003840 > 104857600), being killed\n"
                "slurmstepd-vm: error: Exceeded job memory limit\n"
                "slurmstepd-vm: error: *** JOB 547 ON vm CANCELLED AT 2026-12-02T06:46:00 ***\n"
                "slurmstepd-vm: error: Exceeded job memory limit\n")
SLURM_SCANCEL = "slurmstepd-vm: error: *** JOB 548 ON vm CANCELLED AT 2026-12-02T06:46:04 ***\n"


def test_scheduler_reasons_are_found_in_job_logs():
    assert cluster.scheduler_reason(["epoch 3/10\n", SLURM_TIME + "\n"]) == (cluster.TIME_LIMIT, SLURM_TIME)
    assert cluster.scheduler_reason([SLURM_MEMORY]) == (cluster.MEMORY_LIMIT, SLURM_MEMORY.splitlines()[0])
    assert cluster.scheduler_reason([SLURM_SCANCEL]) == (cluster.CANCELLED, SLURM_SCANCEL.strip())
    assert cluster.scheduler_reason(["*** JOB 9 ON vm CANCELLED AT 2026-12-02T06:46:04 DUE TO NODE FAILURE ***"])[0] \
        == cluster.KILLED
    assert cluster.scheduler_reason(["PBS: job killed: mem 3145728kb exceeded limit 2097152kb"])[0] == \
        cluster.MEMORY_LIMIT
    assert cluster.scheduler_reason(["deepict pick: error: no such file", "skipped due to low contrast"]) is None


def test_a_cancelled_job_is_not_told_to_ask_for_more_time_or_memory():
    cancelled = cluster.killed_job_error("train3d", "train3d.json", 548, [SLURM_SCANCEL])
    assert "cancelled by a user or an administrator (scancel)" in cancelled and "continue the protocol to run it again" in cancelled
    assert "more time" not in cancelled and "more memory" not in cancelled
    memory = cluster.killed_job_error("pick", "cell1.mrc", 547, [SLURM_MEMORY])
    assert memory.startswith("deepict pick (cell1.mrc): the queue job 547 ended before the step did (killed by the "
                             "scheduler for using more than its memory: slurmstepd-vm: error: StepId=547.batch")
    assert "more memory (queue parameter JOB_MEMORY" in memory and "more time" not in memory
    timeout = cluster.killed_job_error("train3d", "train3d.json", 17, [SLURM_TIME])
    assert "DUE TO TIME LIMIT" in timeout and "more time (queue parameter JOB_TIME)" in timeout
    unexplained = cluster.killed_job_error("pick", "cell1.mrc", 5, ["epoch 1\n"])
    assert "no reason in its logs" in unexplained and "more time or memory" in unexplained
    assert "left no log" in cluster.killed_job_error("pick", "cell1.mrc", 5, [])


def test_a_queued_job_never_gets_the_forms_or_this_machines_gpus(monkeypatch):
    from deepict_scipion import Plugin
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    assert "CUDA_VISIBLE_DEVICES" not in Plugin.getProgram(useGpu=True, useQueue=True)
    assert "CUDA_VISIBLE_DEVICES" not in Plugin.getEnviron(submitsJobs=True)
    assert "CUDA_VISIBLE_DEVICES=%(GPU)s" in Plugin.getProgram(useGpu=True, useQueue=False)
    assert Plugin.getEnviron()["CUDA_VISIBLE_DEVICES"] == "5"  # locally, or a protocol running as a queue job


def test_a_memory_the_scheduler_would_refuse_is_refused_before_submission():
    from deepict_scipion.protocols import ProtDeepictPick
    for accepted in ("auto", "", None, "4096", " 2048 ", 3000):
        assert cluster.memory_parameter_error(accepted) is None, accepted
    for refused in ("lots", "4G", "2.5", "-5", "0"):
        assert "give a whole number of MB" in cluster.memory_parameter_error(refused), refused
        assert "JOB_MEMORY" in cluster.memory_parameter_error(refused)
    pick = ProtDeepictPick()
    pick.setQueueParams(("cpu", {"JOB_MEMORY": "lots", "QUEUE_FOR_JOBS": "Y"}))
    assert not any("JOB_MEMORY" in error for error in pick.validate())  # not launched with a queue
    pick._useQueue.set(True)
    assert cluster.memory_parameter_error("lots") in pick.validate()



def fakeSinfo(cpus_by_partition, calls=None):
    """A stand-in for subprocess.run answering ``sinfo -h -N -p P -o %c`` with the CPUs of P's nodes."""
    def run(command, **kwargs):
        if calls is not None:
            calls.append(command)
        partition = command[command.index("-p") + 1]
        lines = "".join(f"{cpus}\n" for cpus in cpus_by_partition.get(partition, []))
        return subprocess.CompletedProcess(command, 0, stdout=lines, stderr="")
    return run


def test_the_cpus_of_a_partitions_nodes_come_from_sinfo():
    calls = []
    assert cluster.partition_cpus("cpu", run=fakeSinfo({"cpu": [2, 16, 8]}, calls)) == 16
    assert calls == [["sinfo", "-h", "-N", "-p", "cpu", "-o", "%c"]]
    assert cluster.partition_cpus("other", run=fakeSinfo({"cpu": [2]})) is None  # no such partition

    def missing(command, **kwargs):
        raise FileNotFoundError(command[0])
    assert cluster.partition_cpus("cpu", run=missing) is None  # no SLURM here: nothing to check


def test_more_threads_than_the_partitions_nodes_have_is_refused_before_submission(monkeypatch):
    from pyworkflow.protocol.hosts import HostConfig
    from deepict_scipion import Plugin
    from deepict_scipion.protocols import ProtDeepictPick, ProtDeepictTrain3D
    assert cluster.threads_error(2, 2, "Threads", "cpu") is None
    assert cluster.threads_error(3, None, "Threads", "cpu") is None  # unknown: the scheduler decides
    error = cluster.threads_error(3, 2, "Scipion threads", "cpu")
    assert "'Scipion threads' is 3" in error and "partition 'cpu' have at most 2" in error
    assert "set 'Scipion threads' to 2 or less" in error and "\n" not in error

    monkeypatch.setattr(cluster, "partition_cpus", lambda partition: {"cpu": 2}.get(partition))
    for protocol in (ProtDeepictPick, ProtDeepictTrain3D):  # Scipion's plugin discovery sets it (no project here)
        monkeypatch.setattr(protocol, "_plugin", Plugin(), raising=False)
    slurm = HostConfig()
    slurm.queueSystem.submitCommand.set("sbatch %_(JOB_SCRIPT)s")
    pick = ProtDeepictPick(numberOfThreads=3, binThreads=1)
    pick.setHostConfig(slurm)
    pick._useQueue.set(True)
    pick.setQueueParams(("cpu", {"JOB_MEMORY": "auto", "QUEUE_FOR_JOBS": "N"}))  # the whole protocol: 3 CPUs
    assert cluster.threads_error(3, 2, "Scipion threads", "cpu") in pick.validate()
    pick.setQueueParams(("cpu", {"JOB_MEMORY": "auto", "QUEUE_FOR_JOBS": "Y"}))  # a job per tomogram: 1 CPU each
    assert not any("CPUs" in error for error in pick.validate())
    pick.binThreads.set(4)
    assert cluster.threads_error(4, 2, "Threads per tomogram", "cpu") in pick.validate()
    pick.setQueueParams(("gpu", {"JOB_MEMORY": "auto", "QUEUE_FOR_JOBS": "Y"}))  # a partition sinfo does not know
    assert not any("CPUs" in error for error in pick.validate())
    train = ProtDeepictTrain3D(numberOfThreads=8)  # a serial protocol: its threads are the engine's
    train.setHostConfig(slurm)
    train._useQueue.set(True)
    train.setQueueParams(("cpu", {"JOB_MEMORY": "auto", "QUEUE_FOR_JOBS": "Y"}))
    assert cluster.threads_error(8, 2, "Threads", "cpu") in train.validate()
    slurm.queueSystem.submitCommand.set("qsub %_(JOB_SCRIPT)s")  # PBS: its queues are no SLURM partitions
    assert not any("CPUs" in error for error in train.validate())

def test_a_job_the_scheduler_refuses_names_the_queue_parameter():
    pyworkflow = ("Failed to submit to queue. JOBID is not valid. There's probably an error interacting with the "
                  "queue. Submit error: ['', 'sbatch: error: Memory specification can not be satisfied\\nsbatch: "
                  "error: Batch job submission failed: Requested node configuration is not available\\n']")
    parameters = {"JOB_MEMORY": "999999", "JOB_TIME": "10", "GPU_COUNT": "0", "JOB_QUEUE": "cpu"}
    error = cluster.refused_job_error("pick", "cell1.mrc", pyworkflow, parameters)
    assert error.startswith("deepict pick (cell1.mrc): the queue refused the job: sbatch: error: Memory "
                            "specification can not be satisfied; sbatch: error: Batch job submission failed")
    assert "Queue parameter JOB_MEMORY is '999999': give a number of MB" in error
    time = pyworkflow.split("Submit error:")[0] + "Submit error: ['', 'sbatch: error: Invalid --time specification']"
    assert "Queue parameter JOB_TIME is '10'" in cluster.refused_job_error("pick", "cell1.mrc", time, parameters)
    other = cluster.refused_job_error("pick", "cell1.mrc", "Failed to submit to queue. Submit error: ['', 'no']",
                                      parameters)
    assert other.endswith("no. Check the queue parameters and the submission template (hosts.conf).")


def plantLeftovers(folder):
    """What a pick job killed while it wrote extra/picks_cell1.csv leaves (deepict.io's names), and what must stay.
    Returns (leftovers, keepers)."""
    scratch = folder / ".deepict-scratch.node7-4242.k2j3h4"
    (scratch / "new").mkdir(parents=True)
    (scratch / "new" / "cell1_equalized.mrc").write_bytes(b"0" * 1024)
    leftovers = [scratch, folder / ".picks_cell1.csv.node7-4242.0a1b2c3d.part",
                 folder / ".picks_cell1.csv.deepict-lock"]
    for path in leftovers[1:]:
        path.write_text("")
    keepers = [folder / "picks_cell0.csv", folder / "pick_cell1.json", folder / "pick_cell1.json.exit"]
    for path in keepers:
        path.write_text("kept")
    return leftovers, keepers


def test_a_killed_jobs_leftovers_are_removed_and_nothing_else(tmp_path):
    leftovers, keepers = plantLeftovers(tmp_path)
    deeper, _ = plantLeftovers(tmp_path / "model")
    cluster.remove_job_leftovers(str(tmp_path))
    assert [path for path in leftovers + deeper if path.exists()] == []
    assert all(path.read_text() == "kept" for path in keepers)


class FakeStep:
    """What ProtDeepictBase._stepFinished asks of a pyworkflow step."""

    def __init__(self, index, status="new", prerequisites=()):
        from pyworkflow.object import String
        self._index, self.status, self._prerequisites = index, status, list(prerequisites)
        self.funcName = String("inferenceStep")

    def isFailed(self):
        return self.status == "failed"

    def isRunning(self):
        return self.status == "running"

    def isNew(self):
        return self.status == "new"

    def isFinished(self):
        return self.status == "finished"

    def getErrorMessage(self):
        return f"deepict pick (cell{self._index}.mrc): killed for its memory" if self.isFailed() else ""


def test_steps_that_fail_in_the_same_poll_are_all_reported(monkeypatch, tmp_path):
    """Two queue jobs killed for their memory together end before pyworkflow's next look: it reports them one
    after the other, and the protocol's error must name both (it named only the first it was told about)."""
    from types import SimpleNamespace

    from pyworkflow.object import Integer
    from pyworkflow.protocol import Protocol

    from deepict_scipion.protocols import ProtDeepictPick

    told = []

    def pyworkflowStepFinished(protocol, step):  # what Protocol._stepFinished does that matters here
        protocol._stepsDone.increment()
        told.append((step, protocol._stepsDone.get()))  # the count its "PROTOCOL FAILED (done N/3)" shows
        if step.isFailed():
            protocol.setFailed(step.getErrorMessage())
        return not step.isFailed()

    monkeypatch.setattr(Protocol, "_stepFinished", pyworkflowStepFinished)
    monkeypatch.setattr(Protocol, "_stepStarted", lambda protocol, step: None)
    pick = ProtDeepictPick()
    messages = []
    monkeypatch.setattr(pick, "setFailed", messages.append)
    monkeypatch.setattr(pick, "error", lambda message: None)
    monkeypatch.setattr(pick, "_store", lambda *objects: None)
    pick._stepsSet = SimpleNamespace(update=lambda step: None, write=lambda: None)
    pick._stepsDone = Integer(0)
    monkeypatch.setattr(pick, "useQueueForSteps", lambda: True)
    monkeypatch.setattr(pick, "_getExtraPath", lambda *names: str(tmp_path.joinpath(*names)))
    leftovers, _ = plantLeftovers(tmp_path)
    first, second = FakeStep(1), FakeStep(2)
    pick._steps = [first, second, FakeStep(3, prerequisites=[1, 2])]
    for step in (first, second):
        step.status = "running"
        pick._stepStarted(step)
    first.status = second.status = "failed"  # both ended before the executor looked

    assert pick._stepFinished(first), "the executor stopped before it reported the second failure"
    assert all(path.exists() for path in leftovers), "removed while a job may still run"
    assert not pick._stepFinished(second)
    assert told == [(second, 2)]
    assert messages[-1].startswith("2 steps failed: ")
    assert "cell1.mrc" in messages[-1] and "cell2.mrc" in messages[-1]
    assert pick._stepsDone.get() == 2
    assert [path for path in leftovers if path.exists()] == [], "the killed jobs' leftovers stay until continue"


def test_stop_waits_for_its_cancelled_jobs_to_leave_the_queue_and_no_longer():
    now = [0.0]
    listed = {17: 3.0, 18: 5.0}  # job: the second until which the queue lists it (a cancelled job being killed)

    def sleep(seconds):
        now[0] += seconds
    assert cluster.wait_until_gone([17, 18], lambda job: now[0] < listed[job], timeout_s=60, poll_s=1,
                                   clock=lambda: now[0], sleep=sleep)
    assert now[0] == 5.0  # not a second longer than the last job
    now[0] = 0.0
    assert not cluster.wait_until_gone([17], lambda job: True, timeout_s=10, poll_s=1, clock=lambda: now[0],
                                       sleep=sleep)
    assert now[0] == 10.0
    assert cluster.wait_until_gone([], lambda job: True)  # no job: nothing to wait for
