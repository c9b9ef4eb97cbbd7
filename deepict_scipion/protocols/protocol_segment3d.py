"""Segment structures (membranes, NPC, filaments) in tomograms with a trained DeePiCt 3D network."""

from pyworkflow import BETA
from tomo.objects import SetOfTomoMasks

from deepict import jobs

from ..convert import newTomoMask
from .protocol_base import ProtDeepictInferenceBase, counted, sentenceStart


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
        published = self._publishedSummary()  # the warning itself: once, among the WARNINGS
        if not hasattr(self, "segmentations"):
            return ["No segmentations yet."] + published + rescaled
        summary = [f"{counted(self.segmentations.getSize(), 'tomogram')} segmented for class '{self._className()}' "
                   f"with {self.inputModel.get()}."]
        if hasattr(self, "probabilityMaps"):
            summary.append(self._probabilityMapsSummary(self.probabilityMaps))
        return summary + published + rescaled

    def _methods(self):
        if not hasattr(self, "segmentations"):
            return []
        job = self._ranInferenceJob()
        classText = self._classText(job)
        return [f"{sentenceStart(classText) if classText else 'The structures'} {'was' if classText else 'were'} "
                f"segmented in {counted(self.segmentations.getSize(), 'tomogram')} with "
                f"{self._networkForMethods()}.{self._rescaleForMethods()} Post-processing: "
                f"{', '.join(self._postprocessForMethods(job))}."]
