"""Shared pieces of the DeePiCt protocols: GPU parameters, running the engine, input checks."""

import json
import os

from pwem.protocols import EMProtocol
from pyworkflow.protocol import params
from pyworkflow.protocol.constants import GPU_LIST, USE_GPU
from tomo.protocols import ProtTomoBase

from .. import Plugin
from ..convert import tomogramKey

#: Relative difference of two voxel sizes that still counts as equal.
SAMPLING_TOLERANCE = 0.01
#: Relative difference between a model's and a tomogram's voxel size that is still accepted.
MODEL_SAMPLING_TOLERANCE = 0.05


class ProtDeepictBase(EMProtocol, ProtTomoBase):
    """Base class: every DeePiCt protocol runs the ``deepict`` command through :meth:`runDeepict`."""

    _references = ["deTeresaTrueba2023"]

    def _defineGpuParams(self, form):
        form.addHidden(USE_GPU, params.BooleanParam, default=True, label="Use GPU",
                       help="Run the network on a GPU if one is visible (the CPU is used otherwise).")
        form.addHidden(GPU_LIST, params.StringParam, default="0", label="Choose GPU IDs",
                       help="GPU to use (one is enough: DeePiCt networks are small).")

    def runDeepict(self, subcommand, args, gpu=False):
        """Run ``deepict <subcommand> <args>`` as a job (locally or through the queue)."""
        Plugin.runDeepict(self, subcommand, args, useGpu=gpu and self.useGpu.get())

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
