"""Train the DeePiCt 2D U-Net to segment a cellular compartment (cytosol, organelles)."""

import os

from pyworkflow import BETA
from pyworkflow.protocol import params

from deepict.train.config import Train2DConfig

from ..convert import splitList, tomogramsByKey
from ..objects import DeepictModel
from .protocol_base import ProtDeepictBase

DEFAULTS = Train2DConfig()  # the form's defaults are the engine's: one place to change them


class ProtDeepictTrain2D(ProtDeepictBase):
    """Train DeePiCt's 2D U-Net (5 levels, 16 filters) on tomograms and compartment masks.

    The network segments one compartment slice by slice (cytosol, organelles, nucleus ...); its
    masks serve as context for 3D picking (e.g. ribosomes only in the cytosol). Masks may be binary
    or label maps turned into 0/1 with a remapping.
    """

    _label = "train 2D compartment network"
    _devStatus = BETA
    _possibleOutputs = {"deepictModel": DeepictModel}

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputTomograms", params.PointerParam, pointerClass="SetOfTomograms", important=True,
                      label="Tomograms", help="Tomograms with a compartment mask each (same sampling rate).")
        form.addParam("inputMasks", params.PointerParam, pointerClass="SetOfTomoMasks", important=True,
                      label="Compartment masks",
                      help="One mask per tomogram (matched by tsId or tomogram file): 1 = compartment, 0 = elsewhere; "
                           "or label maps with a remapping below.")
        form.addParam("className", params.StringParam, default="cytosol", label="Compartment name",
                      help="Name stored in the model and given to its segmentations (e.g. cytosol, organelles).")
        form.addParam("remap", params.StringParam, default="", expertLevel=params.LEVEL_ADVANCED,
                      label="Label remapping",
                      help="For label maps: '.:1' = every non-zero label -> 1; '2,3,5:1' = labels 2, 3, 5 -> 1; "
                           "'1:0,12:0,.:1' = labels 1 and 12 -> 0, every other non-zero label -> 1. Empty: masks are 0/1.")
        form.addParam("validationTsIds", params.StringParam, default="", label="Validation tomograms (tsIds)",
                      help="Tomograms held out to measure validation Dice and keep the best epoch (comma separated). "
                           "Empty: the last tomogram when there are several, else a held-out z range.")
        form.addSection(label="Training")
        form.addParam("epochs", params.IntParam, default=DEFAULTS.epochs, validators=[params.Positive],
                      label="Epochs",
                      help="Training length. Compact compartments (cytosol) are learned in a few epochs; organelles "
                           "need many more (measured: validation Dice still rising after 50 epochs).")
        form.addParam("tilesPerEpoch", params.IntParam, default=DEFAULTS.tiles_per_epoch,
                      validators=[params.Positive], label="Tiles per epoch",
                      help="Random training tiles drawn per epoch (from the slices in use).")
        form.addParam("patience", params.IntParam, default=DEFAULTS.patience,
                      label="Early stop patience (epochs, 0 = off)",
                      help="Stop after this many epochs without a better validation Dice; counted only after the "
                           "first half of the epochs.")
        form.addParam("tileSize", params.IntParam, default=DEFAULTS.tile_size, label="Tile size (px)",
                      help="Training tile edge, a multiple of 16 (DeePiCt: 288; 128 trains many more steps per "
                           "CPU minute; prediction uses larger tiles).")
        form.addParam("zStride", params.IntParam, default=DEFAULTS.z_stride, label="Use every n-th slice",
                      help="Neighbouring slices are nearly identical: training on every n-th one saves memory "
                           "and time without losing information.")
        form.addParam("batchSize", params.IntParam, default=DEFAULTS.batch_size, expertLevel=params.LEVEL_ADVANCED,
                      label="Batch size", help="Tiles per optimiser step; more need more (GPU) memory.")
        form.addParam("learningRate", params.FloatParam, default=DEFAULTS.learning_rate,
                      expertLevel=params.LEVEL_ADVANCED, label="Learning rate",
                      help="Initial rate; it is halved whenever the validation Dice stalls (after the first half).")
        form.addParam("seed", params.IntParam, default=DEFAULTS.seed, expertLevel=params.LEVEL_ADVANCED,
                      label="Random seed", help="Seed of the weight initialisation, tile sampling and augmentation.")
        self._defineComputeParams(form)

    def _insertAllSteps(self):
        self._insertFunctionStep(self.trainStep, needsGPU=True)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def _pairs(self):
        tomos = tomogramsByKey(self.inputTomograms.get())
        masks = self.masksByKey(self.inputMasks.get(), self.inputTomograms.get())
        return [(key, tomos[key].getFileName(), masks[key]) for key in tomos if masks.get(key)]

    def trainStep(self):
        pairs = self._pairs()
        quoted = lambda paths: " ".join(f'"{os.path.abspath(p)}"' for p in paths)  # noqa: E731
        args = [f"--tomograms {quoted(p[1] for p in pairs)}", f"--masks {quoted(p[2] for p in pairs)}",
                f'--out "{os.path.abspath(self._modelPath())}"', f'--class-name "{self.className.get()}"',
                f"--epochs {self.epochs.get()}", f"--tiles-per-epoch {self.tilesPerEpoch.get()}",
                f"--patience {self.patience.get()}", f"--tile-size {self.tileSize.get()}",
                f"--z-stride {self.zStride.get()}", f"--batch-size {self.batchSize.get()}",
                f"--learning-rate {self.learningRate.get()}", f"--seed {self.seed.get()}", "--resume"]
        if self.remap.get():
            args.append(f'--remap "{self.remap.get()}"')
        validation = [p[1] for p in pairs if p[0] in splitList(self.validationTsIds.get())]
        if validation:
            args.append(f"--val-tomograms {quoted(validation)}")
        self.runDeepict("train2d", " ".join(args), gpu=True)

    def createOutputStep(self):
        model = DeepictModel(filename=self._modelPath())
        model.setFromInfo(self.describeModel(os.path.abspath(self._modelPath()), self._modelInfoPath()))
        self._defineOutputs(deepictModel=model)
        self._defineSourceRelation(self.inputTomograms, model)
        self._defineSourceRelation(self.inputMasks, model)

    def _modelPath(self):
        return self._getExtraPath("model2d.pt")

    def _validate(self):
        errors = self._validateNotEmpty(self.inputTomograms, "Tomograms")
        errors += self._validateNotEmpty(self.inputMasks, "Compartment masks")
        if errors:
            return errors
        errors += self._validateMasksFor(self.inputMasks.get(), self.inputTomograms.get(), "Compartment masks")
        if self.tileSize.get() % 16:
            errors.append("The tile size must be a multiple of 16.")
        unknown = set(splitList(self.validationTsIds.get())) - set(tomogramsByKey(self.inputTomograms.get()))
        if unknown:
            errors.append(f"Validation tomogram(s) {', '.join(sorted(unknown))} are not among the input tomograms.")
        return errors

    def _summary(self):
        if hasattr(self, "deepictModel"):
            return [f"Trained {self.deepictModel} on {len(self._pairs())} tomograms."]
        return ["Training not finished yet."]

    def _methods(self):
        if not hasattr(self, "deepictModel"):
            return []
        return [f"The DeePiCt 2D U-Net [deTeresaTrueba2023] was trained to segment {self.className.get()} on "
                f"{len(self._pairs())} tomograms at {self.inputTomograms.get().getSamplingRate():.2f} Å/voxel."]
