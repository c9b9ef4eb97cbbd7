"""Shared pieces of the DeePiCt protocols: compute parameters, running the engine, input checks."""

import glob
import json
import os
import subprocess

from pwem.protocols import EMProtocol
from pyworkflow.protocol import params
from pyworkflow.protocol.params import BIN_THREADS_PARAM
from pyworkflow.protocol.constants import GPU_LIST, USE_GPU
from tomo.protocols import ProtTomoBase

from .. import Plugin
from ..convert import tomogramKey

#: Relative difference of two voxel sizes that still counts as equal.
SAMPLING_TOLERANCE = 0.01
#: Relative difference between a model's and a tomogram's voxel size that is still accepted.
MODEL_SAMPLING_TOLERANCE = 0.05
THREADS_HELP = ("CPU threads of each deepict job (OMP_NUM_THREADS). 0: every core the job may use; give a number "
                "when sharing the machine or submitting to a queue (which reserves that many cores): more "
                "threads than free cores slow PyTorch down many times.")


class DeepictJobError(Exception):
    """A deepict job failed with an error the user can fix; the message is the engine's one line."""


class ProtDeepictBase(EMProtocol, ProtTomoBase):
    """Base class: every DeePiCt protocol runs the ``deepict`` command through :meth:`runDeepict`."""

    _references = ["deTeresaTrueba2023"]

    def _defineGpuParams(self, form):
        form.addHidden(USE_GPU, params.BooleanParam, default=True, label="Use GPU",
                       help="Run the network on a GPU if one is visible (the CPU is used otherwise).")
        form.addHidden(GPU_LIST, params.StringParam, default="0", label="Choose GPU IDs",
                       help="GPU to use (one is enough: DeePiCt networks are small).")

    def _defineComputeParams(self, form, gpu=True, threads=1):
        """The form's compute header: the GPU choice and the engine's CPU threads per job; protocols that
        run one step per tomogram (STEPS_PARALLEL) also get how many tomograms run at once (Scipion threads).

        pyworkflow reads ``binThreads`` of a STEPS_PARALLEL protocol and ``numberOfThreads`` of a serial
        one (run log, queue submission); 0 lets the engine use every core the job may use.
        """
        if gpu:
            self._defineGpuParams(form)
        if self.modeParallel():
            form.addParallelSection(threads=threads, mpi=0)
            form.addParam(BIN_THREADS_PARAM, params.IntParam, default=0, label="Threads per tomogram",
                          help=THREADS_HELP + " When several tomograms run at once (Scipion threads > 1), give "
                                              "each a share, e.g. 4 threads x 4 tomograms on 16 cores.")
        else:
            form.addParallelSection(threads=0, mpi=0)
            form.addParam("numberOfThreads", params.IntParam, default=0, label="Threads", help=THREADS_HELP)

    def _engineThreads(self):
        """The CPU threads the form gives each deepict job (0: every usable core)."""
        if self.modeParallel():
            return self.getBinThreads() if hasattr(self, BIN_THREADS_PARAM) else 0
        return self.numberOfThreads.get() if self.allowThreads else 0

    def runDeepict(self, subcommand, args, gpu=False):
        """Run ``deepict <subcommand> <args>`` as a job (locally or through the queue).

        When the job fails, the step fails with the engine's own one-line error (``deepict <cmd>: error:
        ...``, read from the run's logs) instead of the shell's exit status.
        """
        logSizes = self._logSizes()
        try:
            Plugin.runDeepict(self, subcommand, args, useGpu=gpu and self.useGpu.get(), threads=self._engineThreads())
        except subprocess.CalledProcessError as exc:
            message = self._engineError(subcommand, logSizes)
            if message is None:
                raise
            raise DeepictJobError(message) from exc

    def _logSizes(self):
        """{log file: size} of the run's logs (queue jobs write their own logs in the same folder)."""
        return {path: os.path.getsize(path) for path in glob.glob(self._getLogsPath("*")) if os.path.isfile(path)}

    def _engineError(self, subcommand, logSizes):
        """The last ``deepict <subcommand>: error:`` line written to the logs after ``logSizes``, or None."""
        marker = f"deepict {subcommand}: error:"
        found = None
        for path in sorted(glob.glob(self._getLogsPath("*")), key=os.path.getmtime):
            try:
                with open(path, "rb") as handle:
                    handle.seek(logSizes.get(path, 0))
                    text = handle.read().decode("utf-8", errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                if marker in line:
                    found = line[line.index(marker):].strip()
        return found

    def _modelInfoPath(self, name="model_info.json"):
        return self._getExtraPath(name)

    def describeModel(self, modelFile, jsonFile):
        """Run ``deepict model-info`` and return its JSON description of a model file."""
        self.runDeepict("model-info", f'--model "{modelFile}" --json "{jsonFile}"')
        with open(jsonFile) as handle:
            return json.load(handle)

    # -------------------------------- validation helpers --------------------------------------
    @staticmethod
    def _sameSampling(a, b, tolerance=SAMPLING_TOLERANCE):
        return a and b and abs(a - b) <= tolerance * max(a, b)

    def _validateNotEmpty(self, pointer, label):
        obj = pointer.get()
        if obj is None:
            return [f"{label}: no input selected."]
        if hasattr(obj, "getSize") and obj.getSize() == 0:
            return [f"{label} ({obj.getNameId() if hasattr(obj, 'getNameId') else obj}) is empty: "
                    "select a set with at least one item."]
        return []

    def _validateModelSampling(self, model, tomograms, label="input tomograms"):
        modelSize, tomoSize = model.getVoxelSize(), tomograms.getSamplingRate()
        if modelSize and tomoSize and abs(modelSize - tomoSize) > MODEL_SAMPLING_TOLERANCE * modelSize:
            return [f"The model was trained at {modelSize:.2f} Å/voxel but the {label} have {tomoSize:.2f} Å/voxel. "
                    f"Bin or rescale the tomograms by {modelSize / tomoSize:.3g} (e.g. with an IMOD or Xmipp "
                    "resize protocol), or train a model at this voxel size."]
        return []

    def _validateMasksFor(self, masks, tomograms, label):
        """Masks must have their tomogram's sampling rate, and every tomogram needs one."""
        errors = []
        if not self._sameSampling(masks.getSamplingRate(), tomograms.getSamplingRate()):
            errors.append(f"{label} have {masks.getSamplingRate():.2f} Å/voxel but the tomograms "
                          f"{tomograms.getSamplingRate():.2f} Å/voxel: give masks made on these tomograms.")
        tomoDims = {tomogramKey(t): t.getDim() for t in tomograms.iterItems()}
        for key, maskFile in self.masksByKey(masks, tomograms).items():
            mask = next((m for m in masks.iterItems() if m.getFileName() == maskFile), None)
            if mask is not None and tuple(mask.getDim() or ()) != tuple(tomoDims[key] or ()):
                errors.append(f"{label}: the mask {maskFile} has size {mask.getDim()} but its tomogram {key} has "
                              f"{tomoDims[key]} (x, y, z): give masks made on these tomograms, at the same binning.")
        maskKeys = {tomogramKey(m) for m in masks.iterItems()} | {
            _baseName(m.getVolName()) for m in masks.iterItems() if m.getVolName()}
        missing = [tomogramKey(t) for t in tomograms.iterItems() if tomogramKey(t) not in maskKeys
                   and _baseName(t.getFileName()) not in maskKeys]
        if missing:
            errors.append(f"{label}: no mask for tomogram(s) {', '.join(missing)}.")
        return errors

    def masksByKey(self, masks, tomograms):
        """{tomogram key: mask file} matching masks to tomograms by tsId, else by tomogram file name."""
        byFile = {_baseName(m.getVolName()): m.getFileName() for m in masks.iterItems() if m.getVolName()}
        byKey = {tomogramKey(m): m.getFileName() for m in masks.iterItems()}
        result = {}
        for tomo in tomograms.iterItems():
            key = tomogramKey(tomo)
            result[key] = byKey.get(key) or byFile.get(_baseName(tomo.getFileName()))
        return result


def _baseName(path):
    return os.path.splitext(os.path.basename(path or ""))[0]
