"""Pick particles in tomograms with a trained DeePiCt 3D network."""

from pyworkflow import BETA
from pyworkflow.protocol import params
from tomo.objects import SetOfCoordinates3D, SetOfTomoMasks
from tomo.protocols import ProtTomoPicking

from deepict import jobs

from ..convert import appendPicks, readPicks
from .protocol_base import ProtDeepictInferenceBase, counted


class ProtDeepictPick(ProtDeepictInferenceBase, ProtTomoPicking):
    """Pick particles (ribosomes, FAS, ...) with a DeePiCt 3D network.

    The network's probability map is thresholded and split into clusters; cluster centres become
    3D coordinates with a score (the cluster's mean probability). An optional context mask (e.g. the
    cytosol) keeps only the particles where they belong.
    """

    _label = "pick particles"
    _devStatus = BETA
    _possibleOutputs = {ProtTomoPicking.OUTPUT_PREFIX: SetOfCoordinates3D, "probabilityMaps": SetOfTomoMasks}

    _clusterName = "Particle"
    _jobClass = jobs.PickJob

    def _defineClusterParams(self, form):
        form.addParam("minDistance", params.FloatParam, allowsNull=True,
                      label="Minimum distance (voxels)",
                      help="Picks closer than this are merged, the higher score wins. Empty: the model's "
                           "suggestion (the duplicate distance calibrated after training, else the particle radius "
                           "the model was trained with).")
        form.addParam("boxSize", params.IntParam, allowsNull=True,
                      label="Box size (voxels)",
                      help="Box size recorded with the coordinates, for subtomogram extraction. Empty: 3x the "
                           "particle radius the model was trained with (even), else 32.")
        form.addParam("splitTouching", params.BooleanParam, default=self._default("split_touching"),
                      expertLevel=params.LEVEL_ADVANCED, label="Split touching particles?",
                      help="A cluster of 1.5 training-sphere volumes or more is split at the peaks of its distance "
                           "transform (at least a particle radius apart), one coordinate per particle, instead of "
                           "one coordinate between touching particles (e.g. dense polysomes).")
        form.addParam("orientByContext", params.BooleanParam, default=self._default("orient_by_context"),
                      label="Orient by the context's normal?",
                      help="Give each coordinate the orientation of the context mask's surface near it: the normal "
                           "of a plane fitted to the mask's voxels around the particle (e.g. nuclear pores picked "
                           "by contact with a nuclear-envelope segmentation stand along the envelope's normal; "
                           "membrane proteins along their membrane's). The normal becomes the coordinate's z axis "
                           "(its matrix, RELION convention; the spin about it is 0), so subtomogram extraction and "
                           "averaging start from it. A mask does not tell the sides apart: the normal is turned to "
                           "+z (to +y, then +x, when it lies flat). Needs context masks.")

    def _validateClusterParams(self, model):
        errors = ProtDeepictInferenceBase._validateClusterParams(self, model)
        if self.minDistance.get() is not None and self.minDistance.get() < 0:
            errors.append(f"Post-processing: the minimum distance must not be negative (got {self.minDistance.get()}).")
        if self.boxSize.get() is not None and self.boxSize.get() < 1:
            errors.append(f"Post-processing: the box size must be at least 1 voxel (got {self.boxSize.get()}).")
        if self.orientByContext.get() and not self.contextMasks.get():
            errors.append("Post-processing: orienting by the context's normal needs context masks: choose them "
                          "(Context) or untick 'Orient by the context's normal?'.")
        return errors

    def _inferenceJob(self, key, contextFile):
        job = ProtDeepictInferenceBase._inferenceJob(self, key, contextFile)
        job.min_distance = self.minDistance.get()
        job.orient_by_context = bool(self.orientByContext.get() and contextFile)
        job.split_touching = bool(self.splitTouching.get())
        return job

    def _outputPath(self, key):
        return self._picksPath(key)

    def _picksPath(self, key):
        return self._getExtraPath(f"{key}_picks.csv")

    def createOutputStep(self):
        tomograms = self.inputTomograms.get()
        coordinates = self._createSetOfCoordinates3D(self.inputTomograms)
        coordinates.setSamplingRate(tomograms.getSamplingRate())
        coordinates.setBoxSize(self._boxSize())
        groupId = self.inputModel.get().getClasses().index(self._className()) + 1 \
            if self._className() in self.inputModel.get().getClasses() else 1
        for key, tomo in self.tomos.items():
            appendPicks(coordinates, tomo, readPicks(self._picksPath(key)), groupId)
        self._defineResults({self.OUTPUT_PREFIX: coordinates})

    def _boxSize(self):
        if self.boxSize.get():
            return self.boxSize.get()
        radius = self.inputModel.get().getRadiusAngstrom(self._className())
        if not radius:
            return 32
        voxels = 3 * radius / self.inputTomograms.get().getSamplingRate()
        return int(2 * round(voxels / 2))

    def _summary(self):
        # tomo's picking summary asks every output for getSummary(), which the kept probability maps
        # (SetOfTomoMasks) lack: it turned the whole summary into that AttributeError
        summary = []
        if self.isFinished() and self.getOutputsSize() >= 1:
            for key, output in self.iterOutputAttributes():
                text = output.getSummary() if hasattr(output, "getSummary") else self._probabilityMapsSummary(output)
                summary.append(f"*{key}:*\n{text}")
        else:
            summary += ProtTomoPicking._summary(self)
        if self.isFinished():
            summary.append(f"Class '{self._className()}' picked with {self.inputModel.get()}.")
        # the published network's warning is shown in full once, among the WARNINGS (checkSummaryWarnings)
        summary += self._publishedSummary()
        return summary + self._rescaleSummary(self.inputModel.get(), self.inputTomograms.get())

    def _methods(self):
        if not self.isFinished():
            return []
        coordinates = getattr(self, self.OUTPUT_PREFIX, None)
        count = coordinates.getSize() if coordinates is not None else 0
        job = self._ranInferenceJob()
        averaged = (" Each box's prediction was averaged over four rotations about z (test-time augmentation)."
                    if (job.inference.test_time_rotations if job else self.testTimeRotations.get()) else "")
        classText = self._classText(job)
        verb = "was" if count == 1 else "were"
        post = self._postprocessForMethods(job)
        distance = job.min_distance if job else self.minDistance.get()
        if distance is None:  # the engine's choice for an empty field (see the form's help)
            distance = (self.inputModel.get().getPostprocess() or {}).get("min_distance")
            post.append("duplicates within the particle radius merged" if distance is None else
                        f"duplicates within {distance:.1f} voxels merged (the model's suggestion)")
        else:
            post.append(f"duplicates within {distance:g} voxels merged")
        box = coordinates.getBoxSize() if coordinates is not None else self._boxSize()
        return [f"{counted(count, 'particle')}{f' of {classText}' if classText else ''} {verb} picked in "
                f"{counted(self.inputTomograms.get().getSize(), 'tomogram')} with "
                f"{self._networkForMethods()}.{averaged}{self._rescaleForMethods()} Post-processing: "
                f"{', '.join(post)}; box size {box} voxels."]
