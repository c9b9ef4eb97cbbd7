"""Scipion's queue with a real SLURM: every heavy DeePiCt step launched with "use queue for jobs" becomes one
sbatch job per step (per tomogram for pick, segment, equalize and evaluate), its outputs are registered as
in a local run, a failed tomogram fails alone and "continue" redoes only it, stopping the protocol cancels
its jobs, and a job the scheduler kills fails the protocol with the scheduler's reason.

Run by ``scripts/test-cluster.sh`` only (the conftest checks SLURM and installs the README's hosts.conf).
"""

import datetime
import glob
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
from pyworkflow.protocol.constants import STATUS_FINISHED
from pyworkflow.tests import BaseTest, setupTestProject
from tomo.protocols import ProtImportCoordinates3D, ProtImportTomograms, ProtImportTomomasks

from deepict.io import write_volume
from deepict.nn.model_files import KIND_3D
from deepict.synthetic import PhantomConfig, make_phantom
from deepict.train.state import read_state, state_path
from deepict_scipion.cluster import partition_cpus
from deepict_scipion.convert import coordinatesByKey
from deepict_scipion.headless import LaunchError, launch_and_wait
from deepict_scipion.protocols import (ProtDeepictEqualize, ProtDeepictEvaluate, ProtDeepictPick,
                                       ProtDeepictSegment2D, ProtDeepictSegment3D, ProtDeepictTrain2D,
                                       ProtDeepictTrain3D)
from deepict_scipion.tests.test_readme import _write_tomogram, readme_blocks, run_block

VOXEL = 13.48
SHAPE = (32, 64, 64)
TOMOGRAMS = 2
TINY_3D = dict(depth=2, initialFeatures=4, epochs=2, iterationsPerEpoch=2, batchSize=2, patchSize=32, valFraction=0.0)
#: The banner every queued deepict job prints first (deepict_scipion.cluster.JOB_BANNER).
BANNER = re.compile(r"deepict queue job (\d+) on \S+: (\d+) CPUs, CUDA_VISIBLE_DEVICES=(\S+)")


def queued(protocol, partition="cpu", **parameters):
    """``protocol`` launched through the README's SLURM queue, one job per step."""
    values = {"JOB_MEMORY": "auto", "JOB_TIME": "10", "GPU_COUNT": "0", "QUEUE_FOR_JOBS": "Y"}
    values.update(parameters)
    protocol._useQueue.set(True)
    protocol.setQueueParams((partition, values))
    return protocol


def jobBanners(protocol):
    """{SLURM job id: (CPUs, CUDA_VISIBLE_DEVICES)} from the banners of the protocol's queued jobs' logs."""
    banners = {}
    for path in glob.glob(protocol._getLogsPath("*.out")):
        with open(path) as handle:
            for match in BANNER.finditer(handle.read()):
                banners[int(match.group(1))] = (int(match.group(2)), match.group(3))
    return banners


def stepTimes(protocol, stepName):
    """(start, end) datetimes of each run of ``stepName``, from the protocol's log."""
    text = open(protocol.getLogPaths()[0]).read()
    pattern = r"(STARTED|FINISHED)\S*: {}, step (\d+), time (\S+ \S+)".format(stepName)
    times = {}
    for event, step, stamp in re.findall(pattern, text):
        times.setdefault(step, {})[event] = datetime.datetime.fromisoformat(stamp)
    return [(t["STARTED"], t["FINISHED"]) for t in times.values() if len(t) == 2]


def slurmJob(jobId):
    """``scontrol show job`` as {key: value} (SLURM keeps finished jobs MinJobAge = 600 s)."""
    text = subprocess.run(["scontrol", "-o", "show", "job", str(jobId)], capture_output=True, text=True).stdout
    return dict(item.split("=", 1) for item in text.split() if "=" in item)


def activeJobs(protocol):
    """SLURM job ids of the protocol's jobs that are pending or running."""
    text = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in text.splitlines()
            if line.split()[1].startswith(f"{protocol.strId()}-")]


def picksByTomogram(protocol):
    picks = getattr(protocol, protocol.OUTPUT_PREFIX)
    return {key: np.array(sorted(map(tuple, np.round(coords, 3)))) for key, coords in coordinatesByKey(picks).items()}


class TestQueueSlurm(BaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        data = os.path.abspath(cls.proj.getTmpPath("data"))
        os.makedirs(os.path.join(data, "cytosol"))
        for index in range(TOMOGRAMS):
            phantom = make_phantom(PhantomConfig(shape_zyx=SHAPE, n_ribosomes=6, n_fas=1, n_distractors=2,
                                                 n_organelles=1, n_vesicles=1, seed=30 + index))
            write_volume(os.path.join(data, f"cell{index}.mrc"), phantom.tomogram, VOXEL)
            write_volume(os.path.join(data, "cytosol", f"cell{index}.mrc"), phantom.masks["cytosol"], VOXEL)
            np.savetxt(os.path.join(data, f"cell{index}.txt"), phantom.coords["ribosome"], fmt="%.2f")
        cls.data = data
        cls.tomos = cls.newProtocol(ProtImportTomograms, filesPath=data, filesPattern="cell*.mrc", samplingRate=VOXEL)
        cls.launchProtocol(cls.tomos)
        cls.coords = cls.newProtocol(ProtImportCoordinates3D, filesPath=data, filesPattern="cell*.txt",
                                     importTomograms=cls.tomos.Tomograms, boxSize=24)
        cls.launchProtocol(cls.coords)
        cls.train = queued(cls.newProtocol(ProtDeepictTrain3D, inputTomograms=cls.tomos.Tomograms,
                                           classNames="ribosome", particleRadii="100", numberOfThreads=1, **TINY_3D))
        cls.train.inputCoordinates.append(cls.coords.outputCoordinates)
        cls.launchProtocol(cls.train)

    def newPick(self, **values):
        return self.newProtocol(ProtDeepictPick, inputTomograms=self.tomos.Tomograms,
                                inputModel=self.train.deepictModel, threshold=0.05, minSize=1, binThreads=1, **values)

    def assertWentThroughSlurm(self, protocol, jobs):
        """``jobs`` sbatch jobs of ``protocol`` ran and completed, each with 1 CPU and no GPU."""
        banners = jobBanners(protocol)
        self.assertEqual(len(banners), jobs, f"queued jobs of {protocol.getRunName()}: {banners}")
        for jobId, (cpus, gpus) in banners.items():
            self.assertEqual(slurmJob(jobId).get("JobState"), "COMPLETED", slurmJob(jobId))
            self.assertEqual((cpus, gpus), (1, "unset"))
        self.assertEqual(len(glob.glob(protocol._getLogsPath("*.job"))), jobs)

    def test_train3d_is_one_sbatch_job(self):
        self.assertTrue(os.path.exists(self.train.deepictModel.getFileName()))
        self.assertWentThroughSlurm(self.train, 2)  # training, then the model's description (model-info)
        script = open(glob.glob(self.train._getLogsPath("*.job"))[0]).read()
        self.assertIn("#SBATCH --mem=2048", script)  # JOB_MEMORY auto: the estimate's minimum for tiny tomograms
        self.assertIn("#SBATCH --cpus-per-task=1", script)

    def test_pick_per_tomogram_jobs_give_the_local_picks_and_the_scheduler_gpus(self):
        local = self.newPick(numberOfThreads=1)
        self.launchProtocol(local)
        # The form's GPU list and this machine's CUDA_VISIBLE_DEVICES must not reach a queued job: it sees
        # what SLURM gives (nothing, with GPU_COUNT 0 on this CPU-only cluster).
        remote = queued(self.newPick(numberOfThreads=3, gpuList="3"))
        previous = os.environ.get("CUDA_VISIBLE_DEVICES")
        os.environ["CUDA_VISIBLE_DEVICES"] = "5"
        try:
            self.launchProtocol(remote)
        finally:
            os.environ.pop("CUDA_VISIBLE_DEVICES") if previous is None else os.environ.update(
                CUDA_VISIBLE_DEVICES=previous)
        self.assertWentThroughSlurm(remote, TOMOGRAMS)
        # Two step threads (threads 3): the two tomograms' jobs ran at the same time, not one after the other.
        steps = stepTimes(remote, "inferenceStep")
        self.assertEqual(len(steps), TOMOGRAMS)
        (first_start, first_end), (second_start, _) = sorted(steps)
        self.assertLess(second_start, first_end, "the per-tomogram jobs were not submitted concurrently")
        expected, got = picksByTomogram(local), picksByTomogram(remote)
        self.assertEqual(sorted(expected), sorted(got))
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])

    def test_segment_equalize_and_evaluate_through_the_queue(self):
        segment3d = queued(self.newProtocol(ProtDeepictSegment3D, inputTomograms=self.tomos.Tomograms,
                                            inputModel=self.train.deepictModel, threshold=0.05, binThreads=1,
                                            numberOfThreads=3))
        self.launchProtocol(segment3d)
        self.assertEqual(segment3d.segmentations.getSize(), TOMOGRAMS)
        self.assertWentThroughSlurm(segment3d, TOMOGRAMS)

        masks = self.newProtocol(ProtImportTomomasks, filesPath=os.path.join(self.data, "cytosol"),
                                 filesPattern="cell*.mrc", inputTomos=self.tomos.Tomograms)
        self.launchProtocol(masks)
        train2d = queued(self.newProtocol(ProtDeepictTrain2D, inputTomograms=self.tomos.Tomograms,
                                          inputMasks=masks.tomomasks, className="cytosol", epochs=1, tilesPerEpoch=4,
                                          tileSize=32, batchSize=2, zStride=8, numberOfThreads=1))
        self.launchProtocol(train2d)
        segment2d = queued(self.newProtocol(ProtDeepictSegment2D, inputTomograms=self.tomos.Tomograms,
                                            inputModel=train2d.deepictModel, threshold=0.3, binThreads=1,
                                            numberOfThreads=3))
        self.launchProtocol(segment2d)
        self.assertEqual(segment2d.segmentations.getSize(), TOMOGRAMS)
        self.assertEqual(len(jobBanners(segment2d)), TOMOGRAMS)

        equalize = queued(self.newProtocol(ProtDeepictEqualize, inputTomograms=self.tomos.Tomograms,
                                           numberOfThreads=3, binThreads=1))
        equalize.referenceTomograms.set(self.tomos.Tomograms)  # its first tomogram
        self.launchProtocol(equalize)
        self.assertEqual(equalize.Tomograms.getSize(), TOMOGRAMS)
        self.assertGreaterEqual(len(jobBanners(equalize)), TOMOGRAMS)

        # The same files imported again as the ground truth: evaluate refuses one set as both.
        truth = self.newProtocol(ProtImportCoordinates3D, filesPath=self.coords.filesPath.get(),
                                 filesPattern=self.coords.filesPattern.get(), importTomograms=self.tomos.Tomograms,
                                 boxSize=self.coords.boxSize.get())
        self.launchProtocol(truth)
        evaluate = queued(self.newProtocol(ProtDeepictEvaluate, inputCoordinates=self.coords.outputCoordinates,
                                           groundTruthCoordinates=truth.outputCoordinates, numberOfThreads=3))
        self.launchProtocol(evaluate)
        self.assertIsNotNone(evaluate.loadEvaluation())
        self.assertEqual(len(jobBanners(evaluate)), TOMOGRAMS)

    def test_a_failed_tomogram_fails_alone_and_continue_redoes_only_it(self):
        broken = os.path.join(self.data, "broken")
        os.makedirs(broken)
        for index in range(TOMOGRAMS):
            os.link(os.path.join(self.data, f"cell{index}.mrc"), os.path.join(broken, f"cell{index}.mrc"))
        tomos = self.newProtocol(ProtImportTomograms, filesPath=broken, filesPattern="cell*.mrc", samplingRate=VOXEL)
        self.launchProtocol(tomos)
        victim = os.path.join(broken, "cell1.mrc")
        os.remove(victim)
        with open(os.path.join(self.data, "cell1.mrc"), "rb") as source, open(victim, "wb") as handle:
            handle.write(source.read(1024 + 4096))  # a valid header, the data cut short
        pick = queued(self.newProtocol(ProtDeepictPick, inputTomograms=tomos.Tomograms,
                                       inputModel=self.train.deepictModel, threshold=0.05, minSize=1, binThreads=1,
                                       numberOfThreads=3))
        self.proj.launchProtocol(pick, wait=True)
        pick = self.proj.getProtocol(pick.getObjId())
        self.assertTrue(pick.isFailed())
        self.assertIn("deepict pick: error:", pick.getErrorMessage())
        steps = {json.loads(step.argsStr.get())[0]: step.getStatus() for step in pick.loadSteps()
                 if step.funcName.get() == "inferenceStep"}
        self.assertEqual(sorted(key for key, status in steps.items() if status != STATUS_FINISHED), ["cell1"], steps)
        for key in ("cell0",):
            self.assertTrue(os.path.exists(pick._outputPath(key)), f"the picks of {key} were not kept")
        jobsBefore = set(jobBanners(pick))

        os.remove(victim)
        os.link(os.path.join(self.data, "cell1.mrc"), victim)
        self.proj.launchProtocol(pick, wait=True)  # "continue": Scipion's default run mode resumes
        pick = self.proj.getProtocol(pick.getObjId())
        self.assertEqual(pick.getStatus(), STATUS_FINISHED, pick.getErrorMessage())
        newJobs = set(jobBanners(pick)) - jobsBefore
        self.assertEqual(len(newJobs), 1, "continue must rerun only cell1")
        self.assertEqual(getattr(pick, pick.OUTPUT_PREFIX).getPrecedents().getSize(), TOMOGRAMS)

    def test_stop_cancels_the_queued_jobs(self):
        train = queued(self.newProtocol(ProtDeepictTrain3D, inputTomograms=self.tomos.Tomograms,
                                        classNames="ribosome", particleRadii="100", numberOfThreads=1,
                                        **dict(TINY_3D, epochs=500)))
        train.inputCoordinates.append(self.coords.outputCoordinates)
        self.proj.launchProtocol(train, wait=False)
        jobs = []
        for _ in range(120):
            jobs = activeJobs(train)
            if jobs and all(slurmJob(job).get("JobState") == "RUNNING" for job in jobs):
                break
            time.sleep(0.5)
        self.assertTrue(jobs, "the training's job never ran")
        # what a job killed while it wrote its outputs leaves (deepict.io's scratch, partial and lock files)
        names = (".deepict-scratch.vm-4242.k2j3h4", ".model.pt.vm-4242.0a1b2c3d.part", ".model.pt.deepict-lock")
        leftovers = [train._getExtraPath(name) for name in names]
        os.makedirs(leftovers[0])
        for path in leftovers[1:]:
            open(path, "w").close()
        self.proj.stopProtocol(self.proj.getProtocol(train.getObjId()))
        for _ in range(40):
            if not activeJobs(train):
                break
            time.sleep(0.5)
        self.assertEqual(activeJobs(train), [])
        for job in jobs:
            self.assertEqual(slurmJob(job).get("JobState"), "CANCELLED")
        self.assertTrue(self.proj.getProtocol(train.getObjId()).isAborted())
        self.assertEqual([path for path in leftovers if os.path.exists(path)], [], "Stop left scratch files")
        self.assertTrue(glob.glob(train._getExtraPath("*.json")), "Stop removed the job's file too")

    def test_a_memory_the_scheduler_refuses_names_the_queue_parameter(self):
        pick = queued(self.newPick(numberOfThreads=1), JOB_MEMORY="lots")
        self.proj.launchProtocol(pick, wait=True)
        pick = self.proj.getProtocol(pick.getObjId())
        self.assertTrue(pick.isFailed())
        self.assertIn("JOB_MEMORY) is 'lots': give a whole number of MB", pick.getErrorMessage())
        self.assertEqual(jobBanners(pick), {}, "validated before any submission")
        pick = queued(self.newPick(numberOfThreads=1), JOB_MEMORY="999999")  # more than the node has
        self.proj.launchProtocol(pick, wait=True)
        pick = self.proj.getProtocol(pick.getObjId())
        self.assertTrue(pick.isFailed())
        self.assertIn("the queue refused the job: sbatch: error: Memory specification", pick.getErrorMessage())
        self.assertIn("Queue parameter JOB_MEMORY is '999999'", pick.getErrorMessage())

    def test_a_job_cancelled_by_a_user_fails_as_cancelled_not_short_of_resources(self):
        train = queued(self.newProtocol(ProtDeepictTrain3D, inputTomograms=self.tomos.Tomograms,
                                        classNames="ribosome", particleRadii="100", numberOfThreads=1,
                                        **dict(TINY_3D, epochs=500)))
        train.inputCoordinates.append(self.coords.outputCoordinates)
        self.proj.launchProtocol(train, wait=False)
        for _ in range(120):  # until its job runs and has printed its banner
            if jobBanners(train):
                break
            time.sleep(0.5)
        self.assertTrue(jobBanners(train), "the training's job never ran")
        subprocess.run(["scancel", *map(str, jobBanners(train))], check=True)
        for _ in range(120):
            self.proj._updateProtocol(train)
            if not train.isActive():
                break
            time.sleep(0.5)
        train = self.proj.getProtocol(train.getObjId())
        self.assertTrue(train.isFailed(), train.getStatus())
        self.assertIn("cancelled by a user or an administrator (scancel)", train.getErrorMessage())
        self.assertIn("continue the protocol to run it again", train.getErrorMessage())
        self.assertNotIn("more time", train.getErrorMessage())

    def test_a_job_killed_by_the_scheduler_fails_with_its_reason_and_continue_finishes(self):
        # Scipion threads 3: both tomograms' jobs at once, killed together (the error once named only one)
        pick = queued(self.newPick(numberOfThreads=3), JOB_MEMORY="150")
        self.proj.launchProtocol(pick, wait=True)
        pick = self.proj.getProtocol(pick.getObjId())
        self.assertTrue(pick.isFailed())
        message = pick.getErrorMessage()
        self.assertIn(f"{TOMOGRAMS} steps failed: ", message)
        for index in range(TOMOGRAMS):
            failure = next((part for part in message.split("; ") if f"cell{index}" in part), None)
            self.assertIsNotNone(failure, f"cell{index} is not named: {message}")
            self.assertIn("memory limit", failure.lower())
            self.assertIn("killed by the scheduler", failure)
        self.assertEqual(pick.stepsDone, TOMOGRAMS, "the log's PROTOCOL FAILED (done N/3) counts every failed job")
        self.assertEqual(glob.glob(pick._getExtraPath("*.star")) + glob.glob(pick._getExtraPath("*.tmp*")), [])
        leftovers = [".deepict-*", ".*.part", ".*.deepict-lock"]  # deepict.io's scratch, partial and lock files
        self.assertEqual([path for pattern in leftovers for path in glob.glob(pick._getExtraPath(pattern))], [])
        queued(pick, JOB_MEMORY="auto")
        self.proj.launchProtocol(pick, wait=True)
        pick = self.proj.getProtocol(pick.getObjId())
        self.assertEqual(pick.getStatus(), STATUS_FINISHED, pick.getErrorMessage())
        self.assertEqual(len(coordinatesByKey(getattr(pick, pick.OUTPUT_PREFIX))), TOMOGRAMS)

    def test_a_training_past_its_time_limit_fails_with_the_reason_and_continue_resumes_its_epochs(self):
        train = queued(self.newProtocol(ProtDeepictTrain3D, inputTomograms=self.tomos.Tomograms,
                                        classNames="ribosome", particleRadii="100", numberOfThreads=1,
                                        **dict(TINY_3D, epochs=10000, iterationsPerEpoch=1)), JOB_TIME="1")
        train.inputCoordinates.append(self.coords.outputCoordinates)
        self.proj.launchProtocol(train, wait=True)  # SLURM ends the job after its minute
        train = self.proj.getProtocol(train.getObjId())
        self.assertTrue(train.isFailed())
        self.assertIn("DUE TO TIME LIMIT", train.getErrorMessage())
        self.assertFalse(hasattr(train, "deepictModel"))
        state = state_path(train._getExtraPath("model.pt"))
        done = read_state(state, KIND_3D)["epoch"]
        self.assertGreater(done, 0, "no epoch finished within the minute")

        train.epochs.set(done + 1)  # continue, for one more epoch
        queued(train, JOB_TIME="10")
        self.proj.launchProtocol(train, wait=True)
        train = self.proj.getProtocol(train.getObjId())
        self.assertEqual(train.getStatus(), STATUS_FINISHED, train.getErrorMessage())
        logs = "".join(open(path).read() for path in glob.glob(train._getLogsPath("*.out")))
        self.assertIn(f"after epoch {done} of {done + 1}", logs)

    def test_a_whole_protocol_as_one_queue_job(self):
        # QUEUE_FOR_JOBS = N: Scipion submits the protocol itself; its steps run inside that one job.
        pick = queued(self.newPick(numberOfThreads=1), QUEUE_FOR_JOBS="N")
        self.proj.launchProtocol(pick)
        pick = self.proj.getProtocol(pick.getObjId())
        jobIds = list(pick.getJobIds())
        self.assertEqual(len(jobIds), 1, "the protocol was not submitted")
        for _ in range(240):
            self.proj._updateProtocol(pick)  # what the GUI does: read the job's run.db
            if not pick.isActive():
                break
            time.sleep(0.5)
        pick = self.proj.getProtocol(pick.getObjId())
        self.assertEqual(pick.getStatus(), STATUS_FINISHED, pick.getErrorMessage())
        for _ in range(60):  # the job ends a moment after the protocol (pyworkflow's last words)
            if slurmJob(jobIds[0]).get("JobState") not in ("RUNNING", "COMPLETING"):
                break
            time.sleep(0.5)
        self.assertEqual(slurmJob(jobIds[0]).get("JobState"), "COMPLETED")
        self.assertEqual(len(coordinatesByKey(getattr(pick, pick.OUTPUT_PREFIX))), TOMOGRAMS)

    def test_a_whole_protocol_job_killed_leaves_no_scratch_files(self):
        # QUEUE_FOR_JOBS = N: the job that runs the protocol dies with it; the GUI (here _updateProtocol, as in
        # launch_and_wait) finds it failed once the job left the queue, and removes what it left then.
        train = queued(self.newProtocol(ProtDeepictTrain3D, inputTomograms=self.tomos.Tomograms,
                                        classNames="ribosome", particleRadii="100", numberOfThreads=1,
                                        **dict(TINY_3D, epochs=500)), QUEUE_FOR_JOBS="N")
        train.inputCoordinates.append(self.coords.outputCoordinates)
        self.proj.launchProtocol(train)
        train = self.proj.getProtocol(train.getObjId())
        (jobId,) = list(train.getJobIds())
        for _ in range(120):
            if slurmJob(jobId).get("JobState") == "RUNNING":
                break
            time.sleep(0.5)
        names = (".deepict-scratch.vm-4242.k2j3h4", ".model.pt.vm-4242.0a1b2c3d.part", ".model.pt.deepict-lock")
        leftovers = [train._getExtraPath(name) for name in names]
        os.makedirs(leftovers[0])
        for path in leftovers[1:]:
            open(path, "w").close()
        subprocess.run(["scancel", str(jobId)], check=True)  # as the scheduler kills it (time, memory, node)
        for _ in range(120):
            self.proj._updateProtocol(train)
            if not train.isActive():
                break
            time.sleep(0.5)
        self.assertTrue(train.isFailed(), train.getStatus())
        self.assertEqual([path for path in leftovers if os.path.exists(path)], [], "the killed job's scratch stayed")

    def test_more_cpus_than_the_node_has_are_refused_before_submission(self):
        # SLURM would take such a job and keep it PENDING (reason PartitionConfig) forever.
        cpus = partition_cpus("cpu")
        self.assertIsNotNone(cpus, "sinfo does not know the partition cpu")
        whole = queued(self.newPick(numberOfThreads=cpus + 1), QUEUE_FOR_JOBS="N")
        with self.assertRaises(LaunchError) as raised:
            launch_and_wait(self.proj, whole, poll_s=1)
        self.assertIn(f"each job asks for {cpus + 1} CPUs ('Scipion threads' is {cpus + 1}), but the nodes of "
                      f"partition 'cpu' have at most {cpus}: set 'Scipion threads' to {cpus} or less",
                      str(raised.exception))
        perStep = queued(self.newPick(numberOfThreads=1))  # a job per tomogram
        perStep.binThreads.set(cpus + 1)
        self.proj.launchProtocol(perStep, wait=True)
        perStep = self.proj.getProtocol(perStep.getObjId())
        self.assertTrue(perStep.isFailed())
        self.assertIn(f"'Threads per tomogram' is {cpus + 1}", perStep.getErrorMessage())
        self.assertEqual(jobBanners(perStep), {})
        pending = subprocess.run(["squeue", "-h", "-t", "PD", "-o", "%r"], capture_output=True, text=True).stdout
        self.assertNotIn("PartitionConfig", pending, "a job was submitted that can never start")

    def test_the_readmes_queue_script_waits_for_queued_protocols(self):
        # The README's recipe as a user runs it: the whole training as one job (QUEUE_FOR_JOBS = N), which
        # project.launchProtocol(wait=True) does not wait for, then picking with one job per tomogram.
        (language, code, line), = readme_blocks(queue=True)
        folder = Path(self.proj.getTmpPath("queue_script")).resolve()
        (folder / "tomos").mkdir(parents=True)
        (folder / "masks").mkdir()
        (folder / "home").mkdir()
        for seed, name in enumerate(("A", "B")):
            _write_tomogram(name, seed, folder / "tomos", folder / "masks")
        shutil.copy(os.environ["SCIPION_HOSTS"], folder / "hosts.conf")  # the README's hosts.conf (conftest)
        result = run_block(language, code, folder, folder / "home")
        self.assertEqual(result.returncode, 0, f"README.md block at line {line} failed:\n{result.stdout[-3000:]}\n"
                                               f"{result.stderr[-5000:]}")
        waited = re.findall(r"^(.*[Tt]rain.*): (?:launched|running) \(.*\), queue job (\d+)$", result.stdout, re.M)
        self.assertTrue(waited, f"no progress line of the queued training:\n{result.stdout[-3000:]}")
        name, jobId = waited[0]
        self.assertIn(f"{name}: finished", result.stdout)
        self.assertEqual(slurmJob(jobId).get("JobState"), "COMPLETED", slurmJob(jobId))
        picks = glob.glob(str(folder / "my_scipion" / "userdata" / "projects" / "*" / "Runs" / "*Pick*"))
        self.assertEqual(len(picks), 1, picks)
        self.assertEqual(len(glob.glob(os.path.join(picks[0], "logs", "*.job"))), 2, "one job per tomogram")
