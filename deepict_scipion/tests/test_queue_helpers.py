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
        assert cluster.read_exit_status(job) == code


def test_scheduler_reasons_are_found_in_job_logs():
    slurm_time = "slurmstepd-vm: error: *** JOB 17 ON vm CANCELLED AT 2026-11-28T12:00:00 DUE TO TIME LIMIT ***"
    slurm_memory = "slurmstepd-vm: error: StepId=5.batch exceeded memory limit (281178112 > 209715200), being killed"
    assert cluster.scheduler_reason(["epoch 3/10\n", slurm_time + "\n"]) == slurm_time
    assert cluster.scheduler_reason([slurm_memory]) == slurm_memory
    assert cluster.scheduler_reason(["deepict pick: error: no such file"]) is None


def test_a_queued_job_never_gets_the_forms_or_this_machines_gpus(monkeypatch):
    from deepict_scipion import Plugin
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    assert "CUDA_VISIBLE_DEVICES" not in Plugin.getProgram(useGpu=True, useQueue=True)
    assert "CUDA_VISIBLE_DEVICES" not in Plugin.getEnviron(submitsJobs=True)
    assert "CUDA_VISIBLE_DEVICES=%(GPU)s" in Plugin.getProgram(useGpu=True, useQueue=False)
    assert Plugin.getEnviron()["CUDA_VISIBLE_DEVICES"] == "5"  # locally, or a protocol running as a queue job
