"""Pick particles in tomograms with a trained DeePiCt 3D network."""

import os

from pyworkflow import BETA
from pyworkflow.protocol import params
from pyworkflow.protocol.constants import STEPS_PARALLEL
from tomo.objects import SetOfCoordinates3D, SetOfTomoMasks
from tomo.protocols import ProtTomoPicking

from ..convert import appendPicks, newTomoMask, readPicks, tomogramsByKey
from deepict.errors import DeepictError
from deepict.nn.model_files import published_spectrum_warning
from deepict.infer.clusters import CONTEXT_MODES, ClusterParameters
from ..objects import DeepictModel
from .protocol_base import ProtDeepictBase
from .protocol_equalize import equalizedReference



class ProtDeepictInferenceBase(ProtDeepictBase):
    """Common parts of picking and 3D segmentation: the form, per-tomogram steps, validation.

    Form: Input (tomograms, model, class, equalization), Post-processing (clusters, context),
    Compute (inference box; threads and GPU in the header).
    """

    stepsExecutionMode = STEPS_PARALLEL
    #: What the clusters are, for the form's labels ("Particle", "Segment").
    _clusterName = "Cluster"

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputTomograms", params.PointerParam, pointerClass="SetOfTomograms", important=True,
                      label="Tomograms",
                      help="Tomograms at the model's voxel size (within 5 %; e.g. 13.48 Å/voxel, 4x binned, for "
                           "the published networks). Bin or rescale others first.")
        form.addParam("inputModel", params.PointerParam, pointerClass="DeepictModel", important=True,
                      label="DeePiCt 3D model",
                      help="A model from 'train 3D network' or 'import model' (published DeePiCt networks).")
        form.addParam("className", params.StringParam, default="", label="Class (multi-class models)",
                      help="Which class of a multi-class model to use, by name (e.g. 'fas'). Empty: the model's "
                           "first class.")
        form.addParam("equalize", params.BooleanParam, default=True,
                      label="Equalize to the model's reference spectrum",
                      help="Models trained on spectrum-equalized tomograms store their reference spectrum: each "
                           "tomogram is then equalized to it (with the training's low-pass) before prediction, "
                           "on the fly (a temporary file). Models without one use the tomograms as they are. "
                           "Switch it off only for tomograms already equalized to the same reference.")

        form.addSection(label="Post-processing")
        form.addParam("threshold", params.FloatParam, allowsNull=True, label="Probability threshold",
                      help="Voxels with a network probability above it form the clusters, in [0, 1). Empty: the "
                           "model's suggestion (0.5). Lower it to find more (and fainter) objects.")
        line = form.addLine(f"{self._clusterName} size (voxels)",
                            help="Clusters with fewer voxels than min or more than max are discarded. Empty: the "
                                 "model's suggestion (min) and no limit (max). A particle model trained for one "
                                 "class suggests the minimum size that gave the best F1 on its validation data "
                                 "(see the training protocol's log); a whole 80S ribosome at 13.48 Å/voxel is about "
                                 "1500 voxels.")
        line.addParam("minSize", params.IntParam, allowsNull=True, label="min")
        line.addParam("maxSize", params.IntParam, allowsNull=True, label="max")
        self._defineClusterParams(form)
        form.addParam("connectivity", params.EnumParam, choices=["1 (faces)", "2 (edges)", "3 (corners)"], default=0,
                      expertLevel=params.LEVEL_ADVANCED, label="Cluster connectivity",
                      help="Which neighbouring voxels join a cluster: 1 = the 6 face neighbours (DeePiCt's choice), "
                           "2 = also the 12 edge neighbours, 3 = all 26.")
        form.addParam("border", params.IntParam, default=0,
                      expertLevel=params.LEVEL_ADVANCED, label="Ignore border (voxels)",
                      help="Voxels this close to a face of the tomogram are ignored (e.g. edges of the "
                           "reconstruction with artefacts).")
        group = form.addGroup("Context")
        group.addParam("contextMasks", params.PointerParam, pointerClass="SetOfTomoMasks", allowsNull=True,
                       label="Context masks (optional)",
                       help="Masks of the same tomograms (e.g. the cytosol from 'segment compartments 2D') that "
                            "restrict the result. Empty: no restriction.")
        group.addParam("contextMode", params.EnumParam, choices=list(CONTEXT_MODES), default=0,
                       condition="contextMasks", label="Context mode",
                       help="intersection: only voxels inside the mask (ribosomes in the cytosol); contact: whole "
                            "clusters within the distance of the mask (membranes touching the cytosol); "
                            "colocalization: cluster centres within the distance of the mask (NPCs near the nuclear "
                            "envelope).")
        group.addParam("contextDistance", params.FloatParam, default=0.0,
                       condition="contextMasks", label="Context distance (voxels)",
                       help="For contact and colocalization: how far from the mask a cluster may be (0: touching "
                            "or inside).")
        form.addParam("keepProbabilityMaps", params.BooleanParam, default=False, label="Keep probability maps",
                      help="Also output the network's probability maps (float32, one per tomogram, as large as the "
                           "tomograms): to choose a threshold, or for 'evaluate'.")

        form.addSection(label="Compute")
        form.addParam("window", params.IntParam, default=128,
                      label="Inference box (voxels)",
                      help="The tomogram is predicted in boxes of this side, with blended overlaps. Larger boxes "
                           "are faster but need more (GPU) memory: lower it (e.g. 64) if the GPU runs out of "
                           "memory. Must be divisible by 2^depth of the network (8 for depth 3).")
        form.addParam("batchSize", params.IntParam, default=2,
                      expertLevel=params.LEVEL_ADVANCED, label="Boxes per batch",
                      help="Boxes predicted together; more use more memory.")
        self._defineComputeParams(form)

    def _defineClusterParams(self, form):
        """Post-processing parameters of one kind of output (picking adds distance and box size)."""

    def _insertAllSteps(self):
        self.tomos = tomogramsByKey(self.inputTomograms.get())
        masks = self.masksByKey(self.contextMasks.get(), self.inputTomograms.get()) if self.contextMasks.get() else {}
        runs = [self._insertFunctionStep(self.inferenceStep, key, masks.get(key), needsGPU=True) for key in self.tomos]
        self._insertFunctionStep(self.createOutputStep, prerequisites=runs, needsGPU=False)

    def _commonArgs(self, key, contextFile):
        model = self.inputModel.get()
        args = [f'--model "{os.path.abspath(model.getFileName())}"',
                f'--tomogram "{os.path.abspath(self.tomos[key].getFileName())}"',
                f"--connectivity {self.connectivity.get() + 1}", f"--border {self.border.get()}",
                f"--window {self.window.get()}", f"--batch-size {self.batchSize.get()}",
                f"--voxel-size {self.inputTomograms.get().getSamplingRate()}",
                f"--equalize {'on' if self._equalizes() else 'off'}"]
        for option, value in (("--class-name", self.className.get()), ("--threshold", self.threshold.get()),
                              ("--min-size", self.minSize.get()), ("--max-size", self.maxSize.get())):
            if value not in (None, ""):
                args.append(f'{option} "{value}"' if isinstance(value, str) else f"{option} {value}")
        if contextFile:
            args += [f'--context "{os.path.abspath(contextFile)}"',
                     f"--context-mode {CONTEXT_MODES[self.contextMode.get()]}",
                     f"--context-distance {self.contextDistance.get()}"]
        if self.keepProbabilityMaps.get():
            args.append(f'--probability-map "{os.path.abspath(self._probabilityPath(key))}"')
        return args

    def _probabilityPath(self, key):
        return self._getExtraPath(f"{key}_probability.mrc")

    def _probabilityMaps(self):
        maps = SetOfTomoMasks.create(self._getPath(), suffix="probabilities")
        maps.copyInfo(self.inputTomograms.get())
        for key, tomo in self.tomos.items():
            maps.append(newTomoMask(tomo, self._probabilityPath(key)))
        return maps

    def _defineResults(self, outputs):
        """Register the outputs (plus the probability maps when kept), derived from tomograms and model."""
        if self.keepProbabilityMaps.get():
            outputs["probabilityMaps"] = self._probabilityMaps()
        self._defineOutputs(**outputs)
        for output in outputs.values():
            self._defineSourceRelation(self.inputTomograms, output)
            self._defineSourceRelation(self.inputModel, output)

    def _className(self):
        model = self.inputModel.get()
        return self.className.get() or (model.getClasses() or ["particle"])[0]

    def _validate(self):
        errors = self._validateNotEmpty(self.inputTomograms, "Input tomograms")
        errors += self._validateNotEmpty(self.inputModel, "DeePiCt model")
        if errors:
            return errors
        model, tomograms = self.inputModel.get(), self.inputTomograms.get()
        if model.getKind() != "3d":
            errors.append(f"{model} is a {str(model.getKind()).upper()} model: choose a 3D model (from 'train 3D "
                          "network' or 'import model').")
        if self.className.get() and self.className.get() not in model.getClasses():
            errors.append(f"The model has no class '{self.className.get()}'; its classes are "
                          f"{', '.join(model.getClasses())}.")
        errors += self._validateModelSampling(model, tomograms)
        if self.contextMasks.get() is not None:
            errors += self._validateMasksFor(self.contextMasks.get(), tomograms, "Context masks")
        return errors + self._validateClusterParams(model) + self._validateCompute(model)

    def _validateClusterParams(self, model):
        """The engine's own rules for the post-processing, applied to the values it would use."""
        suggested = model.getPostprocess()

        def value(param, key, default):
            return param.get() if param.get() is not None else suggested.get(key, default)

        clusters = ClusterParameters(
            threshold=value(self.threshold, "threshold", 0.5), min_size=value(self.minSize, "min_size", 1),
            max_size=value(self.maxSize, "max_size", None), connectivity=self.connectivity.get() + 1,
            context_mode=CONTEXT_MODES[self.contextMode.get()], context_distance=self.contextDistance.get() or 0.0)
        errors = []
        try:
            clusters.validate()
        except DeepictError as exc:
            errors.append(f"Post-processing: {exc} (empty fields: the model's suggestion, {suggested}).")
        for param, label in ((self.minSize, "The minimum size"), (self.maxSize, "The maximum size"),
                             (self.border, "The border")):
            if param.get() is not None and param.get() < 0:
                errors.append(f"Post-processing: {label.lower()} must not be negative (got {param.get()}).")
        return errors

    def _validateCompute(self, model):
        errors = []
        window, depth = self.window.get(), model.getDepth()
        if window is None or window < 1:
            errors.append(f"Compute: the inference box must be a positive number of voxels (got {window}).")
        elif depth and window % 2 ** depth:
            # The U-Net halves the box depth times; the engine refuses other sizes at run time.
            lower = window - window % 2 ** depth
            errors.append(f"Compute: the inference box ({window}) must be divisible by 2^depth = {2 ** depth} for "
                          f"this network (depth {depth}): use e.g. {lower or 2 ** depth} or {lower + 2 ** depth}.")
        if self.batchSize.get() is None or self.batchSize.get() < 1:
            errors.append(f"Compute: boxes per batch must be at least 1 (got {self.batchSize.get()}).")
        return errors

    def _equalizes(self):
        """Whether the tomograms are equalized to the model's reference spectrum before prediction."""
        model = self.inputModel.get()
        return bool(self.equalize.get() and model is not None and model.hasSpectrum())

    def _warnings(self):
        model, tomograms = self.inputModel.get(), self.inputTomograms.get()
        if model is None or not model.hasSpectrum() or self.equalize.get():
            return []
        if tomograms is not None and equalizedReference(tomograms):
            return []  # from the equalize spectrum protocol: presumably to the same reference
        return ["This model was trained on spectrum-equalized tomograms but equalization is switched off: unless "
                "the input tomograms are already equalized to the model's reference spectrum, switch 'Equalize to "
                "the model's reference spectrum' on for the results the model was trained to give."]


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

    def _defineClusterParams(self, form):
        form.addParam("minDistance", params.FloatParam, allowsNull=True,
                      label="Minimum distance (voxels)",
                      help="Picks closer than this are merged, the higher score wins. Empty: the particle radius "
                           "the model was trained with.")
        form.addParam("boxSize", params.IntParam, allowsNull=True,
                      label="Box size (voxels)",
                      help="Box size recorded with the coordinates, for subtomogram extraction. Empty: 3x the "
                           "particle radius the model was trained with (even), else 32.")

    def _validateClusterParams(self, model):
        errors = ProtDeepictInferenceBase._validateClusterParams(self, model)
        if self.minDistance.get() is not None and self.minDistance.get() < 0:
            errors.append(f"Post-processing: the minimum distance must not be negative (got {self.minDistance.get()}).")
        if self.boxSize.get() is not None and self.boxSize.get() < 1:
            errors.append(f"Post-processing: the box size must be at least 1 voxel (got {self.boxSize.get()}).")
        return errors

    def inferenceStep(self, key, contextFile):
        args = self._commonArgs(key, contextFile) + [f'--out "{os.path.abspath(self._picksPath(key))}"']
        if self.minDistance.get() is not None:
            args.append(f"--min-distance {self.minDistance.get()}")
        self.runDeepict("pick", " ".join(args), gpu=True)

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
        summary = ProtTomoPicking._summary(self)
        if self.isFinished():
            summary.append(f"Class '{self._className()}' picked with {self.inputModel.get()}.")
        model = self.inputModel.get()
        warning = model and published_spectrum_warning(model.getSource(), model.hasSpectrum())
        if warning:
            summary.append(f"Warning: {warning}")
        return summary

    def _methods(self):
        if not self.isFinished():
            return []
        coordinates = getattr(self, self.OUTPUT_PREFIX, None)
        count = coordinates.getSize() if coordinates is not None else 0
        return [f"{count} {self._className()} particles were picked in {self.inputTomograms.get().getSize()} "
                f"tomograms with a DeePiCt 3D U-Net [deTeresaTrueba2023]."]
