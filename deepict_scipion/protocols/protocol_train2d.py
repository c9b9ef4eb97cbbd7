"""Train the DeePiCt 2D U-Net to segment a cellular compartment (cytosol, organelles)."""

import os

from pyworkflow import BETA
from pyworkflow.protocol import params

from deepict.conventions import EQUALIZE_TO_MEAN
from deepict.errors import DeepictError
from deepict.jobs import Train2DJob
from deepict.train.config import Train2DConfig

from ..convert import splitList, tomogramsByKey
from ..objects import DeepictModel
from .protocol_base import ProtDeepictBase, counted



class ProtDeepictTrain2D(ProtDeepictBase):
    """Train DeePiCt's 2D U-Net (5 levels, 16 filters) on tomograms and compartment masks.

    The network segments one compartment slice by slice (cytosol, organelles, nucleus ...); its
    masks serve as context for 3D picking (e.g. ribosomes only in the cytosol). Masks may be binary
    or label maps turned into 0/1 with a remapping.
    """

    _label = "train 2D compartment network"
    _devStatus = BETA
    _possibleOutputs = {"deepictModel": DeepictModel}
    _jobClass = Train2DJob

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputTomograms", params.PointerParam, pointerClass="SetOfTomograms", important=True,
                      label="Tomograms", help="Tomograms with a compartment mask each (same sampling rate).")
        form.addParam("inputMasks", params.PointerParam, pointerClass="SetOfTomoMasks", important=True,
                      label="Compartment masks",
                      help="One mask per tomogram (matched by tsId or tomogram file): 1 = compartment, 0 = elsewhere; "
                           "or label maps with a remapping below.")
        form.addParam("className", params.StringParam, default="cytosol", label="Compartment name",
                      help="Name stored in the model and given to its segmentations (e.g. cytosol, organelles): "
                           "letters, digits, '_', '-' and '.'.")
        form.addParam("remap", params.StringParam, default="", expertLevel=params.LEVEL_ADVANCED,
                      label="Label remapping",
                      help="For label maps: '.:1' = every non-zero label -> 1; '2,3,5:1' = labels 2, 3, 5 -> 1; "
                           "'1:0,12:0,.:1' = labels 1 and 12 -> 0, every other non-zero label -> 1. Empty: masks are 0/1.")
        self._addTrainingVoxelSizeParam(form)
        form.addParam("equalizeTraining", params.BooleanParam, default=False,
                      label="Equalize to the tomograms' mean spectrum",
                      help="The training tomograms are equalized (in memory) to their mean radial amplitude spectrum, "
                           "which is stored in the model; the segment 2D protocol then equalizes every new tomogram "
                           "to it, so tomograms from other microscopes, phase plate or defocus look like the training "
                           "data.")
        form.addParam("spectrumLowpass", params.FloatParam, allowsNull=True, condition="equalizeTraining",
                      expertLevel=params.LEVEL_ADVANCED, label="Equalization low-pass (Å)",
                      help="The low-pass resolution applied with the equalization (empty: none).")
        form.addParam("validationTsIds", params.StringParam, default="", label="Validation tomograms (tsIds)",
                      help="Tomograms held out to measure validation Dice and keep the best epoch (comma separated). "
                           "Empty: the last tomogram when there are several, else a held-out z range.")
        form.addSection(label="Training")
        form.addParam("epochs", params.IntParam, default=self._default("training.epochs"), validators=[params.Positive],
                      label="Epochs",
                      help="Training length. Compact compartments (cytosol) are learned in a few epochs; organelles "
                           "need many more (measured: validation Dice still rising after 50 epochs).")
        form.addParam("tilesPerEpoch", params.IntParam, default=self._default("training.tiles_per_epoch"),
                      validators=[params.Positive], label="Tiles per epoch",
                      help="Random training tiles drawn per epoch (from the slices in use).")
        form.addParam("patience", params.IntParam, default=self._default("training.patience"),
                      label="Early stop patience (epochs, 0 = off)",
                      help="Stop after this many epochs without a better validation Dice; counted only after the "
                           "first half of the epochs.")
        form.addParam("tileSize", params.IntParam, default=self._default("training.tile_size"), label="Tile size (px)",
                      help="Training tile edge, a multiple of 16 (DeePiCt: 288; 128 trains many more steps per "
                           "CPU minute; prediction uses larger tiles).")
        form.addParam("zStride", params.IntParam, default=self._default("training.z_stride"),
                      label="Use every n-th slice",
                      help="Neighbouring slices are nearly identical: training on every n-th one saves memory "
                           "and time without losing information.")
        form.addParam("batchSize", params.IntParam, default=self._default("training.batch_size"),
                      expertLevel=params.LEVEL_ADVANCED,
                      label="Batch size", help="Tiles per optimiser step; more need more (GPU) memory.")
        form.addParam("learningRate", params.FloatParam, default=self._default("training.learning_rate"),
                      expertLevel=params.LEVEL_ADVANCED, label="Learning rate",
                      help="Initial rate; it is halved whenever the validation Dice stalls (after the first half).")
        form.addParam("seed", params.IntParam, default=self._default("training.seed"),
                      expertLevel=params.LEVEL_ADVANCED,
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
        self.runTraining(Train2DJob(tomograms=[os.path.abspath(p[1]) for p in pairs],
                                    masks=[os.path.abspath(p[2]) for p in pairs],
                                    out=os.path.abspath(self._modelPath()), resume=True,
                                    training_voxel_size=self.trainingVoxelSize.get(),
                                    equalize_to=EQUALIZE_TO_MEAN if self.equalizeTraining.get() else None,
                                    spectrum_lowpass_angstrom=self._equalizationLowpass(),
                                    training=self._trainConfig(pairs)),
                         "train2d")

    def _equalizationLowpass(self):
        return self.spectrumLowpass.get() if self.equalizeTraining.get() else None

    def _trainConfig(self, pairs):
        """The engine's training configuration of the form's values."""
        validation = splitList(self.validationTsIds.get())
        return Train2DConfig(
            class_name=self.className.get(), remap=self.remap.get() or None, epochs=self.epochs.get(),
            tiles_per_epoch=self.tilesPerEpoch.get(), patience=self.patience.get(), tile_size=self.tileSize.get(),
            z_stride=self.zStride.get(), batch_size=self.batchSize.get(), learning_rate=self.learningRate.get(),
            seed=self.seed.get(), val_tomograms=[os.path.abspath(p[1]) for p in pairs if p[0] in validation])

    def createOutputStep(self):
        model = DeepictModel(filename=self._modelPath())
        model.setFromInfo(self.describeModel(os.path.abspath(self._modelPath()), self._modelInfoPath()))
        self._defineOutputs(deepictModel=model)
        self._defineSourceRelation(self.inputTomograms, model)
        self._defineSourceRelation(self.inputMasks, model)

    def _modelPath(self):
        return self._getExtraPath("model2d.pt")

    def _validate(self):
        errors = self._validateTomograms(self.inputTomograms, "Tomograms")
        errors += self._validateNotEmpty(self.inputMasks, "Compartment masks")
        if errors:
            return errors
        errors += self._validateMasksFor(self.inputMasks.get(), self.inputTomograms.get(), "Compartment masks")
        errors += self._validateTrainingVoxelSize(self.inputTomograms.get())
        unknown = set(splitList(self.validationTsIds.get())) - set(tomogramsByKey(self.inputTomograms.get()))
        if unknown:
            errors.append(f"Validation tomogram(s) {', '.join(sorted(unknown))} are not among the input tomograms.")
        try:
            self._trainConfig(self._pairs()).validate()
        except DeepictError as exc:  # the engine's own rules for the hyper-parameters
            errors.append(f"Training: {exc}.")
        lowpass = self._equalizationLowpass()
        if lowpass is not None and not lowpass > 0:
            errors.append("Equalization low-pass: give a positive resolution in Å, or leave it empty.")
        return errors

    def _summary(self):
        summary = [f"Trained {self.deepictModel} on {counted(len(self._pairs()), 'tomogram')}."
                   if hasattr(self, "deepictModel") else "Training not finished yet."]
        if self.equalizeTraining.get():
            summary.append("Training tomograms equalized to their mean spectrum, stored in the model (segment 2D "
                           "equalizes new tomograms to it).")
        return summary

    def _methods(self):
        if not hasattr(self, "deepictModel"):
            return []
        return [f"The DeePiCt 2D U-Net [deTeresaTrueba2023] was trained to segment {self.className.get()} on "
                f"{counted(len(self._pairs()), 'tomogram')} at {self.inputTomograms.get().getSamplingRate():.2f} "
                "Å/voxel."]
