"""Segment structures (membranes, NPC, filaments) in tomograms with a trained DeePiCt 3D network."""

from pyworkflow import BETA
from tomo.objects import SetOfTomoMasks

from deepict import jobs

from ..convert import newTomoMask
from .protocol_base import ProtDeepictInferenceBase, sentenceStart


class ProtDeepictSegment3D(ProtDeepictInferenceBase):
    """Segment structures (membranes, nuclear pores, filaments) with a DeePiCt 3D network.

    The probability map is thresholded and clusters smaller than the minimum size are removed; the
    result is one binary mask per tomogram (SetOfTomoMasks), optionally restricted by a context mask.
    """

    _label = "segment structures 3D"
    _devStatus = BETA
    _possibleOutputs = {"segmentations": SetOfTomoMasks, "probabilityMaps": SetOfTomoMasks}

    _clusterName = "Segment"
    _jobClass = jobs.Segment3DJob

    def _maskPath(self, key):
        return self._getExtraPath(f"{key}_segmentation.mrc")

    def _outputPath(self, key):
        return self._maskPath(key)

    def createOutputStep(self):
        masks = SetOfTomoMasks.create(self._getPath(), suffix="segmentations")
        masks.copyInfo(self.inputTomograms.get())
        for key, tomo in self.tomos.items():
            masks.append(newTomoMask(tomo, self._maskPath(key)))
        self._defineResults({"segmentations": masks})

    def _summary(self):
        rescaled = self._rescaleSummary(self.inputModel.get(), self.inputTomograms.get())
        if not hasattr(self, "segmentations"):
            return ["No segmentations yet."] + rescaled
        return [f"{self.segmentations.getSize()} tomograms segmented for class '{self._className()}' with "
                f"{self.inputModel.get()}."] + rescaled

    def _methods(self):
        if not hasattr(self, "segmentations"):
            return []
        return [f"{sentenceStart(self._className())} was segmented in {self.segmentations.getSize()} tomograms with "
                f"{self._networkForMethods()}."]
