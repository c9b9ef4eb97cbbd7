"""Combine trained DeePiCt 3D networks into one that averages their probability maps (an ensemble)."""

import os

from pyworkflow import BETA
from pyworkflow.protocol import params

from deepict.jobs import EnsembleJob

from ..convert import coordinatesByKey, tomogramsByKey, writeCoordinatesCsv
from ..objects import DeepictModel
from .protocol_base import ProtDeepictBase, counted


class ProtDeepictEnsemble(ProtDeepictBase):
    """Combine two or more trained DeePiCt 3D networks into one (an ensemble).

    Every voxel's probability is the mean of the networks': networks trained alike but for their random
    seed (or their size) err in different places, so their mean tells particles from look-alikes better
    than either. On the development data two FAS networks combined and calibrated here picked FAS with F1 0.840
    against 0.816 and 0.776 alone in phase-plate tomograms, 0.536 against 0.483 and 0.496 in defocus ones
    (README, Measured). The result is a DeepictModel that the pick and segment protocols use as any other;
    picking takes as long as with every network in turn.
    """

    _label = "combine 3D networks (ensemble)"
    _devStatus = BETA
    _possibleOutputs = {"deepictModel": DeepictModel}
    _jobClass = EnsembleJob

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputModels", params.MultiPointerParam, pointerClass="DeepictModel", important=True,
                      label="3D networks to combine",
                      help="Two or more DeePiCt 3D networks trained for the same class on tomograms of the same "
                           "voxel size and equalized alike: typically the same 'train 3D network' run repeated with "
                           "another random seed (Training tab) or another network size.")
        form.addParam("calibrate", params.BooleanParam, default=True,
                      label="Calibrate on the training data?",
                      help="Choose the ensemble's threshold, minimum cluster size and duplicate distance on the "
                           "validation slabs of the networks' training tomograms (the part training kept aside), "
                           "as a training does for one network: the averaged map is smoother than each network's, "
                           "so their values need not suit it. Give the training tomograms and coordinates below. "
                           "No: the ensemble takes the networks' median values.")
        form.addParam("inputTomograms", params.PointerParam, pointerClass="SetOfTomograms", allowsNull=True,
                      condition="calibrate", label="Training tomograms",
                      help="The tomograms the networks were trained on (those with coordinates are used).")
        form.addParam("inputCoordinates", params.PointerParam, pointerClass="SetOfCoordinates3D", allowsNull=True,
                      condition="calibrate", label="Training coordinates",
                      help="The coordinates the networks were trained on, picked on those tomograms.")
        self._defineComputeParams(form)

    def _insertAllSteps(self):
        if self.calibrate.get():
            self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        self._insertFunctionStep(self.combineStep, needsGPU=bool(self.calibrate.get()))
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def convertInputStep(self):
        """One coordinate CSV per training tomogram with coordinates; the list ties them together."""
        tomograms = tomogramsByKey(self.inputTomograms.get())
        coordinates = coordinatesByKey(self.inputCoordinates.get(), self.inputTomograms.get())
        os.makedirs(self._getExtraPath("labels"), exist_ok=True)
        with open(self._getExtraPath("training_tomograms.txt"), "w") as handle:
            for key, tomogram in tomograms.items():
                if key not in coordinates:
                    continue
                path = os.path.abspath(self._getExtraPath("labels", f"{key}.csv"))
                writeCoordinatesCsv(path, coordinates[key], self.inputTomograms.get().getSamplingRate())
                handle.write(f"{key}\t{os.path.abspath(tomogram.getFileName())}\t{path}\n")

    def combineStep(self):
        job = EnsembleJob(models=[os.path.abspath(model.getFileName()) for model in self._models()],
                          out=os.path.abspath(self._modelPath()))
        if self.calibrate.get():
            rows = [line.rstrip("\n").split("\t") for line in open(self._getExtraPath("training_tomograms.txt"))]
            job.tomograms, job.coords = [row[1] for row in rows], [row[2] for row in rows]
            job.voxel_size = self.inputTomograms.get().getSamplingRate()
        self.runDeepict(job, "ensemble")

    def createOutputStep(self):
        model = DeepictModel(filename=self._modelPath())
        model.setFromInfo(self.describeModel(os.path.abspath(self._modelPath()), self._modelInfoPath()))
        self._defineOutputs(deepictModel=model)
        for pointer in self.inputModels:
            self._defineSourceRelation(pointer, model)

    # ----------------------------------------- helpers ----------------------------------------
    def _modelPath(self):
        return self._getExtraPath("model.pt")

    def _models(self):
        return [pointer.get() for pointer in self.inputModels if pointer.get() is not None]

    # ------------------------------------------ info -----------------------------------------
    def _validate(self):
        models = self._models()
        if len(models) < 2:
            return ["Select two or more 3D networks to combine (an ensemble of one is that network)."]
        errors = []
        first = models[0]
        for index, model in enumerate(models, start=1):
            if model.getKind() != "3d":
                errors.append(f"Network {index} ({model}) is a {str(model.getKind()).upper()} network: only 3D "
                              "networks are combined.")
            elif model.getMemberCount():
                errors.append(f"Network {index} ({model}) is itself an ensemble: select its networks instead.")
            elif model.getClasses() != first.getClasses():
                errors.append(f"Network {index} finds {', '.join(model.getClasses())}, network 1 "
                              f"{', '.join(first.getClasses())}: combine networks trained for the same classes.")
            elif not self._sameSampling(model.getVoxelSize(), first.getVoxelSize()):
                errors.append(f"Network {index} works at {model.getVoxelSize()} Å/voxel, network 1 at "
                              f"{first.getVoxelSize()} Å/voxel: combine networks trained at one voxel size.")
            elif model.hasSpectrum() != first.hasSpectrum():
                errors.append(f"Network {index} {'equalizes' if model.hasSpectrum() else 'does not equalize'} "
                              "tomograms to a reference spectrum and network 1 does "
                              f"{'' if first.hasSpectrum() else 'not '}: combine networks whose training "
                              "tomograms were equalized alike.")
        if self.calibrate.get():
            errors += self._validateCalibration(first) + self._validateSplits(models)
        return errors

    @staticmethod
    def _validateSplits(models):
        """Calibrating on network 1's validation slabs would score another network on its training data where
        their trainings kept other slabs (networks registered by an older version do not say: the run checks)."""
        first = models[0].getValidationSplit()
        for index, model in enumerate(models[1:], start=2):
            split = model.getValidationSplit()
            if first and split and split != first:
                return [f"Network {index} kept other validation slabs than network 1 (validation fraction "
                        f"{split['val_fraction']} and box {split['patch_size']} against {first['val_fraction']} and "
                        f"{first['patch_size']}): calibrating would score one on data the other trained on. Combine "
                        "networks trained with the same validation fraction and training box, or untick 'Calibrate "
                        "on the training data?' to use the networks' median post-processing."]
        return []

    def _validateCalibration(self, model):
        errors = self._validateTomograms(self.inputTomograms, "Training tomograms")
        errors += self._validateNotEmpty(self.inputCoordinates, "Training coordinates")
        if errors:
            return errors + ["Give the networks' training tomograms and coordinates, or untick 'Calibrate on the "
                             "training data?' to use the networks' median post-processing."]
        classes = model.getClasses()
        if len(classes) != 1 or model.getRadiusAngstrom(classes[0]) is None:
            return ["Only one-class particle networks (trained on coordinates) have a calibrated post-processing: "
                    "untick 'Calibrate on the training data?'."]
        tomograms, coordinates = self.inputTomograms.get(), self.inputCoordinates.get()
        if not self._sameSampling(coordinates.getSamplingRate(), tomograms.getSamplingRate()):
            errors.append(f"The training coordinates have {coordinates.getSamplingRate():.2f} Å/px but the training "
                          f"tomograms {tomograms.getSamplingRate():.2f} Å/px: give the coordinates picked on them.")
        if not coordinatesByKey(coordinates, tomograms):
            errors.append("None of the training coordinates lies in the training tomograms (their tsIds differ): "
                          "give the coordinates the networks were trained on with their tomograms.")
        return errors + self._validateModelSampling(model, tomograms, "training tomograms")

    def _summary(self):
        info = self._existingInfo()
        if not info:
            return [f"Combining {len(self._models())} networks: not finished yet."]
        post = info.get("postprocess") or {}
        if info.get("postprocess_calibrated"):
            how = "calibrated on the training tomograms"
        elif self.calibrate.get():
            how = ("the networks' median: the trainings kept no validation slabs, or they hold too few annotated "
                   "particles to calibrate on")
        else:
            how = "the networks' median"
        members = info.get("members") or []
        return [f"Ensemble of {counted(len(members), 'network')}: {'; '.join(self._memberNames(members))}.",
                f"Post-processing ({how}): {self._postprocessText(post)}."]

    @staticmethod
    def _postprocessText(post):
        """The ensemble's post-processing values, rounded as the other summaries give them (the calibration's
        distance is a float of many digits)."""
        threshold, size, distance = post.get("threshold"), post.get("min_size"), post.get("min_distance")
        return (f"threshold {'the default' if threshold is None else f'{threshold:.3g}'}, minimum cluster size "
                f"{'none' if size is None else counted(size, 'voxel')}, duplicate distance "
                f"{'the particle radius' if distance is None else f'{distance:.1f} voxels'}")

    def _memberNames(self, members):
        """The runs that made the networks, as the project shows them, with run id and training seed (the runs
        of one training repeated bear one name, and their files are all called model.pt)."""
        names = []
        for index, pointer in enumerate(self.inputModels):
            owner = pointer.getObjValue()  # the run (an output chosen in the form), or the network itself
            project = self.getProject()
            if owner is not None and not hasattr(owner, "getRunName") and owner.getObjParentId() and project:
                owner = project.getProtocol(int(owner.getObjParentId()))
            details = [f"run {owner.getObjId()}"] if hasattr(owner, "getRunName") else []
            seed = members[index].get("seed") if index < len(members) else None
            if seed is not None:
                details.append(f"seed {seed}")
            name = owner.getRunName() if hasattr(owner, "getRunName") else str(pointer.get())
            names.append(f"{name} ({', '.join(details)})" if details else name)
        return names

    def _methods(self):
        if not hasattr(self, "deepictModel"):
            return []
        calibrated = (" Its threshold, minimum cluster size and duplicate distance were calibrated on the "
                      "training tomograms."
                      if (self._existingInfo() or {}).get("postprocess_calibrated") else "")
        return [f"The probability maps of {len(self._models())} DeePiCt 3D networks [deTeresaTrueba2023] were "
                f"averaged voxel by voxel (an ensemble).{calibrated}"]
