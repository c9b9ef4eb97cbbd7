"""Train a DeePiCt 3D U-Net on annotated tomograms."""

import os

from pyworkflow import BETA
from pyworkflow.protocol import Protocol, params

from deepict import jobs
from deepict.conventions import (DEFAULT_CLASS_NAMES_TEXT, EQUALIZE_TO_MEAN, EQUALIZE_TO_NONE, MAX_RESCALE_FACTOR,
                                 SPECTRUM_COLUMNS, averaged_weights, default_class_names)
from deepict.errors import DeepictError
from deepict.jobs import Train3DJob
from deepict.parameters import choices_of
from deepict.train.config import DEFAULT_EPOCHS, RARE_PARTICLE_EPOCHS, RARE_PARTICLES_PER_TOMOGRAM, TrainConfig

from ..convert import (coordinatesByKey, equalizedReference, spectrumFileHeader, splitList, tomogramsByKey,
                       writeCoordinatesCsv)
from ..objects import DeepictModel
from .protocol_base import ProtDeepictBase, counted, stableDigest

LABELS_COORDINATES, LABELS_MASKS = 0, 1
#: The engine's losses in the order the form stores them (the choice is saved as an index).
LOSSES = list(choices_of(Train3DJob, "training.loss"))


class ProtDeepictTrain3D(ProtDeepictBase):
    """Train a DeePiCt 3D U-Net to find particles (ribosomes, FAS, ...) or structures (membranes, NPC).

    Particles are learned from 3D coordinates: a solid sphere of the given radius is painted around
    each one. Structures are learned from binary tomogram masks. Several classes can be learned at
    once (one input set and one name per class). The result is a DeepictModel for the pick and
    segment protocols.
    """

    _label = "train 3D network"
    _devStatus = BETA
    _possibleOutputs = {"deepictModel": DeepictModel}
    _jobClass = Train3DJob
    STEPS_NAME_THEIR_INPUTS = True  # the labels' sources and the training's job

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputTomograms", params.PointerParam, pointerClass="SetOfTomograms", important=True,
                      label="Tomograms",
                      help="Annotated tomograms to learn from. Only those with annotations in at least one class "
                           "are used. All must have the same sampling rate; ~13.5 Å/voxel (4x binned) is typical.")
        form.addParam("labelSource", params.EnumParam, choices=["particle coordinates", "structure masks"],
                      default=LABELS_COORDINATES, display=params.EnumParam.DISPLAY_HLIST, label="Learn from",
                      help="Particle coordinates (spheres are painted around them) or binary structure masks.")
        form.addParam("inputCoordinates", params.MultiPointerParam, pointerClass="SetOfCoordinates3D", allowsNull=True,
                      condition=f"labelSource == {LABELS_COORDINATES}", label="Coordinates (one set per class)",
                      help="One SetOfCoordinates3D per class, picked on the tomograms above (same sampling rate).")
        # No default, as deepict train3d's --radius has none: a radius the user did not choose would label every
        # particle but a ribosome with the wrong sphere, silently.
        form.addParam("particleRadii", params.StringParam, important=True,
                      condition=f"labelSource == {LABELS_COORDINATES}", label="Particle radius (Å, per class)",
                      help="Radius of the sphere painted around each particle, in Å; one value for all classes or "
                           "one per class, comma separated (e.g. '110, 100'). Required: it is the particle's own "
                           "size. A bit smaller than the particle works best: about 100 Å for an 80S ribosome, "
                           "90-110 Å for FAS.")
        form.addParam("inputMasks", params.MultiPointerParam, pointerClass="SetOfTomoMasks", allowsNull=True,
                      condition=f"labelSource == {LABELS_MASKS}", label="Masks (one set per class)",
                      help="One SetOfTomoMasks per class (e.g. membranes), one binary mask per tomogram.")
        form.addParam("classNames", params.StringParam, label="Class names",
                      help="One name per input set, comma separated (e.g. 'ribosome, fas' or 'membrane'); empty: "
                           f"{DEFAULT_CLASS_NAMES_TEXT}, as deepict train3d names them. "
                           "The names are stored in the model and label its outputs: letters, digits, '_', '-' "
                           "and '.'. One class per network picks "
                           "better: on the development data a ribosome + FAS network reached F1 0.877 / 0.526 "
                           "against 0.914 / 0.605 for one network each (as the paper found), at half the training "
                           "time, and only one-class particle networks get their post-processing calibrated.")
        self._addTrainingVoxelSizeParam(form)
        form.addParam("equalizeTraining", params.BooleanParam, default=True,
                      label="Equalize to the tomograms' mean spectrum",
                      help="The training tomograms are equalized (in memory) to their mean radial amplitude "
                           "spectrum, which is stored in the model; the pick / segment protocols then equalize every "
                           "new tomogram to it, so tomograms from other microscopes, phase plate or defocus look like "
                           "the training data (on the development data: defocus picking F1 0.00 without, 0.86 with; "
                           "phase-plate picking unchanged). No separate 'equalize spectrum' run is needed. Tomograms "
                           "already equalized (by the equalize spectrum protocol, or to the reference spectrum "
                           "below) keep their reference instead.")
        form.addParam("spectrumReference", params.FileParam, allowsNull=True, expertLevel=params.LEVEL_ADVANCED,
                      label="Equalized to reference spectrum (optional)",
                      help="If the tomograms were spectrum-equalized outside Scipion: the reference spectrum TSV "
                           "('deepict spectrum') they were equalized to. It is stored in the model, and the pick / "
                           "segment protocols equalize new tomograms to it. Not needed for tomograms from the "
                           "'equalize spectrum' protocol: their reference is found automatically.")
        form.addParam("spectrumLowpass", params.FloatParam, allowsNull=True,
                      condition="spectrumReference or equalizeTraining",
                      expertLevel=params.LEVEL_ADVANCED, label="Equalization low-pass (Å)",
                      help="The low-pass resolution of the equalization (empty: none): the one used outside "
                           "Scipion with the reference above, or the one applied with the mean spectrum.")

        form.addSection(label="Network")
        form.addParam("depth", params.IntParam, default=self._default("training.depth"),
                      validators=[params.Range(1, 5)], label="Depth",
                      help="Number of pooling levels of the U-Net (published networks: 2). Deeper networks see "
                           "more context.")
        form.addParam("initialFeatures", params.IntParam, default=self._default("training.initial_features"),
                      validators=[params.Positive],
                      label="Initial features",
                      help="Channels at full resolution (published: 4 or 16). 16 picked best on the "
                           "development data; 8 (with depth 3) trains and picks about twice as fast on a CPU.")
        form.addParam("batchNorm", params.BooleanParam, default=self._default("training.batch_norm"),
                      label="Batch normalisation",
                      help="Normalise activations after each convolution (as the published networks do); "
                           "stabilises training with small batches.")
        form.addParam("encoderDropout", params.FloatParam, default=self._default("training.encoder_dropout"),
                      validators=[params.Range(0, 0.9)],
                      expertLevel=params.LEVEL_ADVANCED, label="Encoder dropout",
                      help="Fraction of encoder activations dropped at random during training (regularisation).")
        form.addParam("decoderDropout", params.FloatParam, default=self._default("training.decoder_dropout"),
                      validators=[params.Range(0, 0.9)],
                      expertLevel=params.LEVEL_ADVANCED, label="Decoder dropout",
                      help="Fraction of decoder activations dropped at random during training (regularisation "
                           "against over-fitting a few annotated tomograms).")

        form.addSection(label="Training")
        form.addParam("epochs", params.IntParam, default=self._default("training.epochs"), allowsNull=True,
                      label="Epochs",
                      help="Training length in epochs of 'batches per epoch' batches. Empty: "
                           f"{DEFAULT_EPOCHS}, or {RARE_PARTICLE_EPOCHS} for a rare particle, a class with fewer than "
                           f"{RARE_PARTICLES_PER_TOMOGRAM} annotated particles per training tomogram (like FAS): on "
                           "the development data FAS models picked better after twice the training, ribosomes did "
                           "not (README, Measured); the log says which was chosen. The model is the mean of the "
                           "weights over the second half of the epochs (or, without weight averaging, the epoch of "
                           "best validation Dice); an interrupted run continues where it stopped.")
        form.addParam("iterationsPerEpoch", params.IntParam, default=self._default("training.iterations_per_epoch"),
                      validators=[params.Positive],
                      label="Batches per epoch",
                      help="Optimiser steps per epoch; the validation Dice is measured after each epoch.")
        form.addParam("batchSize", params.IntParam, default=self._default("training.batch_size"),
                      validators=[params.Positive], label="Batch size",
                      help="Training boxes per step; more need more (GPU) memory.")
        form.addParam("patchSize", params.IntParam, default=self._default("training.patch_size"),
                      label="Patch size (voxels)",
                      help="Side of the training boxes; must be divisible by 2^depth.")
        form.addParam("learningRate", params.FloatParam, default=self._default("training.learning_rate"),
                      expertLevel=params.LEVEL_ADVANCED,
                      label="Learning rate", help="Step size of the Adam optimiser.")
        form.addParam("loss", params.EnumParam, choices=LOSSES, default=self._choiceIndex("training.loss"),
                      label="Loss",
                      help="bce_dice: cross-entropy + Dice (robust default); dice: DeePiCt's loss; "
                           "generalized_dice: weights rare classes up (for the rare FAS on the development "
                           "data it did worse than bce_dice; the README's Measured table has the figures).")
        form.addParam("positiveFraction", params.FloatParam, default=self._default("training.positive_fraction"),
                      validators=[params.Range(0, 1)],
                      expertLevel=params.LEVEL_ADVANCED, label="Fraction of boxes near labels",
                      help="Share of training boxes centred near an annotation (the rest are random), so that "
                           "sparse particles are seen often enough.")
        form.addParam("valFraction", params.FloatParam, default=self._default("training.val_fraction"),
                      validators=[params.Range(0, 0.45)],
                      label="Validation fraction",
                      help="Fraction of each tomogram's width (high x) kept aside to measure validation Dice "
                           "and to calibrate the picking threshold and sizes; without weight averaging the epoch "
                           "of best validation Dice is kept. 0 trains on everything (no calibration).")
        form.addParam("patience", params.IntParam, default=self._default("training.patience"),
                      expertLevel=params.LEVEL_ADVANCED,
                      label="Early stop patience (epochs, 0 = off)",
                      help="Stop when the validation Dice has not improved for this many epochs.")
        form.addParam("augment", params.BooleanParam, default=self._default("training.augment"),
                      label="Data augmentation",
                      help="Random flips, 90° rotations about z and intensity jitter of every box.")
        form.addParam("coarserSampling", params.FloatParam, default=self._default("training.coarser_sampling"),
                      condition="augment", expertLevel=params.LEVEL_ADVANCED,
                      validators=[params.Range(1, MAX_RESCALE_FACTOR)],
                      label="Also train for tomograms up to N times coarser",
                      help="Half of the boxes are low-passed as if the tomogram had been acquired at up to this "
                           "many times its voxel size. Picking rescales a coarser tomogram to the model's voxel "
                           "size on the fly, and the rescaled tomogram lacks those fine details; a model that has "
                           "seen such boxes keeps its quality there. 1 turns this off.")
        form.addParam("seed", params.IntParam, default=self._default("training.seed"),
                      expertLevel=params.LEVEL_ADVANCED, label="Random seed",
                      help="Seed of the weight initialisation, box sampling and augmentation (same seed, same "
                           "data: the same model on the CPU).")
        form.addParam("weightAveraging", params.BooleanParam, default=self._default("training.weight_averaging"),
                      expertLevel=params.LEVEL_ADVANCED, label="Average the weights of the late epochs",
                      help="Yes: the model is the mean of the network's weights over the second half of the "
                           "epochs (stochastic weight averaging), which varies less from one training to the next "
                           "than the single epoch of best validation Dice. No: keep that best epoch.")
        form.addParam("hardNegatives", params.BooleanParam, default=self._default("training.hard_negatives"),
                      expertLevel=params.LEVEL_ADVANCED, label="Train on hard negatives",
                      condition=f"labelSource == {LABELS_COORDINATES}",
                      help="Particle trainings (coordinates). Yes: after a quarter, half and three quarters of the "
                           "epochs the network predicts the training tomograms, and half of the background boxes are "
                           "then centred where it sees the particle but nothing is annotated (for FAS: clumps of "
                           "cytosol it took for FAS). This teaches it what the particle is not, for three "
                           "predictions of the training tomograms. It assumes the annotation is complete: where "
                           "many particles are left unannotated, say No.")
        self._defineComputeParams(form)

    # ----------------------------------------- steps -----------------------------------------
    def _insertAllSteps(self):
        # What each step depends on, for Continue to rerun the steps whose inputs changed: the labels' sources,
        # and the training's job (its tomograms and labels are the first step's, compared through it)
        self._insertFunctionStep(self.convertInputStep, stableDigest(self._labelSources()), needsGPU=False)
        self._insertFunctionStep(self.trainStep, stableDigest(jobs.job_to_dict(self._trainJob([], []))),
                                 needsGPU=True)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def _labelSources(self):
        """The inputs the labels are made from (a pointer's object and attribute)."""
        return [self.labelSource.get(), self.inputTomograms.getUniqueId(),
                [pointer.getUniqueId() for pointer in self._labelSets()]]

    def _labelledKeys(self):
        tomos = tomogramsByKey(self.inputTomograms.get())
        if self.labelSource.get() == LABELS_MASKS:
            keys = set(tomos)
            for pointer in self.inputMasks:
                keys &= {k for k, f in self.masksByKey(pointer.get(), self.inputTomograms.get()).items() if f}
            return [k for k in tomos if k in keys]
        labelled = set()
        for pointer in self.inputCoordinates:
            labelled |= set(coordinatesByKey(pointer.get(), self.inputTomograms.get()))
        return [k for k in tomos if k in labelled]

    def convertInputStep(self, labelSources=None):
        """``labelSources`` is only compared by Continue (see :meth:`_insertAllSteps`)."""
        tomos = tomogramsByKey(self.inputTomograms.get())
        keys = self._labelledKeys()
        sampling = self.inputTomograms.get().getSamplingRate()
        os.makedirs(self._getExtraPath("labels"), exist_ok=True)
        files = []
        if self.labelSource.get() == LABELS_COORDINATES:
            for index, pointer in enumerate(self.inputCoordinates):
                byKey = coordinatesByKey(pointer.get(), self.inputTomograms.get())
                classFiles = []
                for key in keys:
                    path = self._getExtraPath("labels", f"{key}_class{index + 1}.csv")
                    writeCoordinatesCsv(path, byKey.get(key, []), sampling)
                    classFiles.append(os.path.abspath(path))
                files.append(classFiles)
        else:
            for pointer in self.inputMasks:
                masks = self.masksByKey(pointer.get(), self.inputTomograms.get())
                files.append([os.path.abspath(masks[key]) for key in keys])
        # The job list ties each tomogram to its label files, one column per class.
        with open(self._getExtraPath("training_tomograms.txt"), "w") as handle:
            for row, key in enumerate(keys):
                handle.write("\t".join([key, os.path.abspath(tomos[key].getFileName())]
                                       + [classFiles[row] for classFiles in files]) + "\n")

    def _readJobLists(self):
        rows = [line.rstrip("\n").split("\t") for line in open(self._getExtraPath("training_tomograms.txt"))]
        tomograms = [row[1] for row in rows]
        labels = [[row[2 + c] for row in rows] for c in range(len(rows[0]) - 2)]
        return tomograms, labels

    def trainStep(self, jobDigest=None):
        """``jobDigest`` is only compared by Continue (see :meth:`_insertAllSteps`)."""
        self.runTraining(self._trainJob(*self._readJobLists()), "train3d")

    def _trainJob(self, tomograms, labels):
        """The training job: ``labels`` holds one list of files per class, one file per tomogram."""
        coordinates = self.labelSource.get() == LABELS_COORDINATES
        noReference = (None, None, self._default("spectrum_lowpass_width"))
        spectrum, lowpass, width = self._spectrumReference() or noReference
        if self._equalizesToMean():
            lowpass = self.spectrumLowpass.get()
        return Train3DJob(
            tomograms=tomograms, coords=labels if coordinates else None, masks=None if coordinates else labels,
            radius=self._radii() if coordinates else None, radius_in_angstrom=coordinates,
            voxel_size=self.inputTomograms.get().getSamplingRate(), training_voxel_size=self.trainingVoxelSize.get(),
            out=os.path.abspath(self._modelPath()),
            resume=True, spectrum_reference=os.path.abspath(spectrum) if spectrum else None,
            equalize_to=EQUALIZE_TO_MEAN if self._equalizesToMean() else EQUALIZE_TO_NONE,
            spectrum_lowpass_angstrom=lowpass or None, spectrum_lowpass_width=width,
            training=self._trainConfig(self._classNames()))

    def createOutputStep(self):
        info = self.describeModel(os.path.abspath(self._modelPath()), self._modelInfoPath())
        model = DeepictModel(filename=self._modelPath())
        model.setFromInfo(info)
        self._defineOutputs(deepictModel=model)
        self._defineSourceRelation(self.inputTomograms, model)

    # ----------------------------------------- helpers ----------------------------------------
    def _modelPath(self):
        return self._getExtraPath("model.pt")

    def _equalizesToMean(self):
        """Whether the training equalizes to the tomograms' mean spectrum: asked, and not equalized before."""
        return bool(self.equalizeTraining.get()) and not self._spectrumReference()

    def _spectrumReference(self):
        """(spectrum TSV, low-pass Å or None, low-pass width) the tomograms were equalized with, or None.

        The file parameter wins; otherwise tomograms made by the equalize spectrum protocol carry it.
        """
        if self.spectrumReference.get():
            return self.spectrumReference.get(), self.spectrumLowpass.get(), self._default("spectrum_lowpass_width")
        tomograms = self.inputTomograms.get()
        return equalizedReference(tomograms) if tomograms is not None else None

    def _labelSets(self):
        return self.inputCoordinates if self.labelSource.get() == LABELS_COORDINATES else self.inputMasks

    def _classNames(self):
        """The form's class names, else the engine's (as deepict train3d names a training given none)."""
        return splitList(self.classNames.get()) or default_class_names(len(self._labelSets()))

    def _trainConfig(self, names):
        """The engine's training configuration of the form's values (for its validation)."""
        return TrainConfig(
            classes=names, depth=self.depth.get(), initial_features=self.initialFeatures.get(),
            batch_norm=self.batchNorm.get(), encoder_dropout=self.encoderDropout.get(),
            decoder_dropout=self.decoderDropout.get(), patch_size=self.patchSize.get(), batch_size=self.batchSize.get(),
            epochs=self.epochs.get(), iterations_per_epoch=self.iterationsPerEpoch.get(),
            learning_rate=self.learningRate.get(), loss=LOSSES[self.loss.get()],
            positive_fraction=self.positiveFraction.get(), val_fraction=self.valFraction.get(),
            patience=self.patience.get(), augment=self.augment.get(),
            coarser_sampling=self.coarserSampling.get(), seed=self.seed.get(),
            weight_averaging=self.weightAveraging.get(), hard_negatives=self.hardNegatives.get())

    def _radii(self):
        radii = [float(r) for r in splitList(self.particleRadii.get())]
        return radii * len(self._labelSets()) if len(radii) == 1 else radii

    # ------------------------------------------ info -----------------------------------------
    def _validateRadii(self, tomograms):
        """Why the particle radii (Å) cannot label the coordinate sets ([] when they can)."""
        if not splitList(self.particleRadii.get()):
            return ["Particle radius: give the particles' radius in Å (e.g. 100 for ribosomes); it has no default, "
                    "as it is the particle's own size."]
        try:
            radii = self._radii()
        except ValueError:
            return ["Particle radii must be numbers in Å, comma separated."]
        if len(radii) != len(self._labelSets()):
            return ["Give one particle radius for all classes or one per coordinate set."]
        if min(radii) <= 0:
            return ["Particle radii must be positive."]
        voxel = self.trainingVoxelSize.get() or tomograms.getSamplingRate()
        if voxel and min(radii) < voxel:  # a sphere that holds no voxel labels nothing
            return [f"Particle radii: {min(radii):g} Å is less than a voxel ({voxel:.2f} Å); give the particles' "
                    "radius in Å (e.g. 100 for ribosomes)."]
        return []

    @staticmethod
    def _labelSetProblem(pointer, labels, label):
        """Why a coordinate or mask set cannot be trained on (None when it can), and what to do.

        A set that is not there yet, missing or empty needs three different fixes: a pointer to a protocol that
        has not run (a template just loaded) waits for that run; a lost pointer (a copy or an imported workflow)
        must be chosen again.
        """
        if labels is None:
            source = pointer.getObjValue()
            if isinstance(source, Protocol) and not source.isFinished():
                return f"{label} is not there yet: run '{source.getRunName()}' first."
            return f"{label} is missing: choose it again."
        if labels.getSize() == 0:
            return f"{label} ({labels.getNameId()}) is empty: choose a set with at least one item."
        return None

    def _validate(self):
        errors = self._validateTomograms(self.inputTomograms, "Tomograms")
        if errors:
            return errors
        tomograms = self.inputTomograms.get()
        labelSets = [p.get() for p in self._labelSets()]
        what = "coordinate" if self.labelSource.get() == LABELS_COORDINATES else "mask"
        if not labelSets:
            return [f"Select at least one {what} set."]
        errors += self._validateTrainingVoxelSize(tomograms)
        names = self._classNames()
        if len(names) != len(labelSets):
            errors.append(f"{len(labelSets)} {what} set(s) but {len(names)} class name(s): give one name per set.")
        tomoKeys = set(tomogramsByKey(tomograms))
        for index, (pointer, labels) in enumerate(zip(self._labelSets(), labelSets), start=1):
            problem = self._labelSetProblem(pointer, labels, f"{what.capitalize()} set {index}")
            if problem:
                errors.append(problem)
                continue
            if self.labelSource.get() == LABELS_COORDINATES:
                if not self._sameSampling(labels.getSamplingRate(), tomograms.getSamplingRate()):
                    errors.append(
                        f"Coordinate set {index} has {labels.getSamplingRate():.2f} Å/px but the tomograms "
                        f"{tomograms.getSamplingRate():.2f} Å/px: use coordinates picked on these tomograms (or "
                        "import them with the right sampling rate so they are rescaled).")
                missing = sorted(set(labels.getTSIds()) - tomoKeys) if hasattr(labels, "getTSIds") else []
                if missing:
                    errors.append(f"Coordinate set {index} has coordinates of tomogram(s) {', '.join(missing)} "
                                  "that are not among the input tomograms: add them or choose matching sets.")
            else:
                errors += self._validateMasksFor(labels, tomograms, f"Mask set {index}")
        if self.labelSource.get() == LABELS_COORDINATES:
            errors += self._validateRadii(tomograms)
        try:
            self._trainConfig(names).validate()
        except DeepictError as exc:  # the engine's own rules for the hyper-parameters
            errors.append(f"Training: {exc}.")
        spectrum = self.spectrumReference.get()
        if spectrum:
            header = spectrumFileHeader(spectrum) if os.path.isfile(spectrum) else None
            if header is None:
                errors.append(f"Reference spectrum file {spectrum} not found or not readable.")
            elif not all(c in header for c in SPECTRUM_COLUMNS):
                errors.append(f"Reference spectrum file {spectrum} lacks the columns {' '.join(SPECTRUM_COLUMNS)}: "
                              "give a TSV written by 'deepict spectrum' or by the equalize spectrum protocol.")
        return errors

    def _summary(self):
        summary = []
        if hasattr(self, "deepictModel"):
            summary.append(f"Trained {self.deepictModel}.")
        if self.inputTomograms.get() is not None and self._equalizesToMean():
            summary.append("Training tomograms equalized to their mean spectrum, stored in the model (pick / "
                           "segment equalize new tomograms to it).")
        reference = self._spectrumReference() if self.inputTomograms.get() is not None else None
        if reference:
            summary.append(f"Tomograms equalized to the reference spectrum {reference[0]}: stored in the model "
                           "(pick / segment equalize new tomograms to it).")
        info = self._existingInfo()
        if info and info.get("history"):
            summary += self._historySummary(info)
        return summary or ["Training not finished yet."]

    @staticmethod
    def _historySummary(info):
        """The training's course and which weights the model holds, from the model's description (model-info)."""
        history = info["history"]
        last = history[-1]
        best = max((h["val_dice"] or 0) for h in history)
        lines = [f"{counted(len(history), 'epoch')}, final loss {last['loss']:.3f}, best validation Dice "
                 f"{best:.3f} (of an epoch as trained)."]
        average = info.get("weight_average")
        if average:
            # the averaged weights (with batch-norm statistics of their own) are not any epoch as trained: the
            # model's Dice is its own and may be below the best epoch's
            batchNorm = (info.get("architecture") or {}).get("batch_norm", True)
            how = " with batch-norm statistics estimated anew" if batchNorm else ""
            dice = ("" if average["val_dice"] is None else
                    f": validation Dice {average['val_dice']:.3f} as it is, against {best:.3f} for the best "
                    "epoch as trained")
            lines.append(f"Model (weight averaging): {averaged_weights(average['first_epoch'], average['last_epoch'])}"
                         f"{how}{dice}.")
        return lines

    def _trainedEpochs(self):
        """The epochs the model was trained for: the form's, or when left empty the engine's choice."""
        return (self._existingInfo() or {}).get("epochs") or self.epochs.get()

    def _methods(self):
        if not hasattr(self, "deepictModel"):
            return []
        # The training that ran: the form may have changed since (a Continue that has not run yet)
        job = self._ranJob("train3d") or self._trainJob(*self._readJobLists())
        what = ("coordinates (spheres of radius " + ", ".join(dict.fromkeys(f"{r:g}" for r in job.radius)) + " Å)"
                if job.coords else "binary masks")
        return [f"A DeePiCt 3D U-Net [deTeresaTrueba2023] (depth {job.training.depth}, "
                f"{job.training.initial_features} initial features) was trained on {what} of "
                f"{counted(len(job.tomograms), 'tomogram')} at {job.training_voxel_size or job.voxel_size:.2f} "
                f"Å/voxel for {counted(self._trainedEpochs(), 'epoch')} to segment {', '.join(job.training.classes)}."]
