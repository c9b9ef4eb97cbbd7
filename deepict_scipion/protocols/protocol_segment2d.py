"""Segment cellular compartments slice by slice with a trained DeePiCt 2D network."""

import os

from pyworkflow import BETA
from pyworkflow.protocol import params
from pyworkflow.protocol.constants import STEPS_PARALLEL
from tomo.objects import SetOfTomoMasks

from deepict.jobs import Segment2DJob

from ..constants import PROBABILITY_MAPS_ATTRIBUTE
from ..convert import mark, newTomoMask, tomogramsByKey
from .protocol_base import ProtDeepictBase, counted, sentenceStart


class ProtDeepictSegment2D(ProtDeepictBase):
    """Segment a compartment (cytosol, organelles) with DeePiCt's 2D U-Net.

    Every slice is predicted in overlapping tiles; the stacked probabilities are smoothed along z
    with a 1D Gaussian and thresholded. Outputs binary masks (usable as context by the pick and
    segment protocols) and the probability maps.
    """

    _label = "segment compartments 2D"
    _devStatus = BETA
    _possibleOutputs = {"segmentations": SetOfTomoMasks, "probabilityMaps": SetOfTomoMasks}
    stepsExecutionMode = STEPS_PARALLEL
    _jobClass = Segment2DJob

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputTomograms", params.PointerParam, pointerClass="SetOfTomograms", important=True,
                      label="Tomograms",
                      help="Tomograms to segment; at another voxel size than the model's (up to 4x either way) they "
                           "are rescaled to it for the network, and the masks come back at their own.")
        form.addParam("inputModel", params.PointerParam, pointerClass="DeepictModel", important=True,
                      label="DeePiCt 2D model", help="A model from 'train 2D compartment network'.")
        self._addEqualizeParam(form, "equalize")
        form.addSection(label="Post-processing")
        form.addParam("threshold", params.FloatParam, allowsNull=True, label="Threshold",
                      help=self._help("threshold"))
        form.addParam("sigma", params.FloatParam, allowsNull=True, label="Z smoothing (slices)",
                      help=self._help("sigma"))
        form.addSection(label="Compute")
        form.addParam("batchSize", params.IntParam, default=self._default("batch_size"),
                      label="Tiles per batch",
                      help=self._help("batch_size"))
        self._defineComputeParams(form)

    def _insertAllSteps(self):
        self.tomos = tomogramsByKey(self.inputTomograms.get())
        # prerequisites=[]: the tomograms' steps are independent (pyworkflow chains each to the previous by default)
        steps = [self._insertFunctionStep(self.segmentStep, key, prerequisites=[], needsGPU=True) for key in self.tomos]
        self._insertFunctionStep(self.createOutputStep, prerequisites=steps, needsGPU=False)

    def _maskPath(self, key):
        return self._getExtraPath(f"{key}_{self._className()}.mrc")

    def _probabilityPath(self, key):
        return self._getExtraPath(f"{key}_{self._className()}_probability.mrc")

    def _className(self):
        return (self.inputModel.get().getClasses() or ["compartment"])[0]

    def segmentStep(self, key):
        self.runDeepict(self.segmentJob(key), f"segment2d_{key}")

    def segmentJob(self, key):
        """The job of tomogram ``key``, from the form. The voxel size is the set's sampling rate, as for pick and
        segment 3D: the one this form validated against the model's, whatever the MRC header says."""
        return Segment2DJob(model=os.path.abspath(self.inputModel.get().getFileName()),
                            tomogram=os.path.abspath(self.tomos[key].getFileName()),
                            out=os.path.abspath(self._maskPath(key)),
                            probability_map=os.path.abspath(self._probabilityPath(key)),
                            batch_size=self.batchSize.get(), threshold=self.threshold.get(), sigma=self.sigma.get(),
                            voxel_size=self.inputTomograms.get().getSamplingRate(),
                            equalize="auto" if self.equalize.get() else "off")

    def createOutputStep(self):
        outputs = {}
        for name, path in (("segmentations", self._maskPath), ("probabilityMaps", self._probabilityPath)):
            masks = SetOfTomoMasks.create(self._getPath(), suffix=name)
            masks.copyInfo(self.inputTomograms.get())
            for key, tomo in self.tomos.items():
                masks.append(newTomoMask(tomo, path(key)))
            if name == "probabilityMaps":
                mark(masks, PROBABILITY_MAPS_ATTRIBUTE)
            outputs[name] = masks
        self._defineOutputs(**outputs)
        for output in outputs.values():
            self._defineSourceRelation(self.inputTomograms, output)
            self._defineSourceRelation(self.inputModel, output)

    def _validate(self):
        errors = self._validateTomograms(self.inputTomograms, "Tomograms")
        errors += self._validateNotEmpty(self.inputModel, "DeePiCt 2D model")
        if errors:
            return errors
        model = self.inputModel.get()
        if model.getKind() != "2d":
            errors.append(f"{model} is a {str(model.getKind()).upper()} model: choose a model from 'train 2D "
                          "compartment network' (3D models go to 'pick particles' / 'segment structures 3D').")
        errors += self._validateModelSampling(model, self.inputTomograms.get())
        if self.threshold.get() is not None and not 0 <= self.threshold.get() < 1:
            errors.append(f"Post-processing: the threshold must be in [0, 1), got {self.threshold.get():g}.")
        if self.sigma.get() is not None and self.sigma.get() < 0:
            errors.append(f"Post-processing: the z smoothing must not be negative, got {self.sigma.get():g}.")
        if self.batchSize.get() is None or self.batchSize.get() < 1:
            errors.append(f"Compute: tiles per batch must be at least 1 (got {self.batchSize.get()}).")
        return errors

    def _summary(self):
        rescaled = self._rescaleSummary(self.inputModel.get(), self.inputTomograms.get())
        if hasattr(self, "segmentations"):
            count = self.segmentations.getSize()
            return [f"{sentenceStart(self._className())} segmented in {counted(count, 'tomogram')} with "
                    f"{self.inputModel.get()}; binary masks and probability maps.",
                    f"Binary masks: output 'segmentations'; the network's probability maps of class "
                    f"'{self._className()}' (before smoothing and thresholding), one per tomogram: output "
                    f"'probabilityMaps'; files {self._getExtraPath(f'<tsId>_{self._className()}*.mrc')}."] + rescaled
        return ["No segmentations yet."] + rescaled

    def _methods(self):
        if not hasattr(self, "segmentations"):
            return []
        return [f"{sentenceStart(self._className())} was segmented slice by slice with the DeePiCt 2D U-Net "
                "[deTeresaTrueba2023], smoothed along z and thresholded."]
