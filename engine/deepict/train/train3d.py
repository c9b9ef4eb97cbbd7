"""Training the 3D U-Net on annotated tomograms (particle spheres or structure masks).

How training works, and why:

* **Training spectrum** — the mean radial spectrum of the training tomograms is stored in the model,
  so that picking a tomogram unlike them (another microscope, defocus) warns instead of silently
  finding nothing.
* **Normalisation** — each tomogram is z-scored with its own whole-volume mean and standard
  deviation, exactly as at inference (the original normalised training boxes differently).
* **Patches** — each sample is a ``patch_size``³ box; a fraction ``positive_fraction`` of them is
  centred near a labelled voxel (a particle centre, or a voxel of a structure mask) so that rare
  particles are seen, the rest are drawn uniformly so that background is seen too; in particle
  trainings, once the network has predicted its training tomograms (:mod:`.hard_negatives`), half of
  those background boxes are centred where it sees the particle without a label instead.
* **Augmentation that applies** — every sample is flipped along each axis at random, rotated by a
  random multiple of 90° about z, and its intensities are jittered (gain, offset, noise). Half of
  the samples are also low-passed as if the tomogram had been acquired at up to
  ``coarser_sampling`` times the voxel size and rescaled back: ``deepict pick`` rescales a coarser
  tomogram to the model's voxel size, and a model that never saw such data loses particles on it.
* **Validation** — a slab at the high-x end of every tomogram (``val_fraction`` of its width) is
  never used for training; validation Dice is measured on a fixed grid of boxes in it.
* **Minimum cluster size** — after training, one-class particle models choose the minimum size
  of a pick's cluster on the validation slabs (:mod:`.calibrate`); it becomes the model's default.
* **Epochs** — unless given, 40, or 80 when a class has fewer than 50 annotated particles per training
  tomogram (:func:`~deepict.train.config.default_epochs`): FAS models picked better after twice the
  training on the development data, ribosome models did not.
* **Checkpoints, resume** — the shared loop's (:mod:`.loop`): cosine-annealed learning rate,
  the model with the best validation Dice in ``<out>``, the full state in ``<out>.last.pt``; the
  model is marked complete only after the calibration (see :mod:`.state`).
* **Weight averaging** — by default the final model is the mean of the weights over the second half
  of the epochs (:mod:`.averaging`), not the best validation epoch, whose choice on a few dozen
  validation particles is partly luck.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from deepict.conventions import averaged_weights
from deepict.errors import InputFileError, ParameterError
from deepict.infer.model_spectrum import spectrum_record
from deepict.io import volume_mean_std
from deepict.nn.devices import memory_format, select_device
from deepict.nn.model_files import COMPLETE, KIND_3D, LABEL_SHARE, POSTPROCESS_CALIBRATION, ModelInfo, build_network
from deepict.progress import Progress, print_line
from deepict.spectrum import default_workers, mean_spectrum, radial_spectrum
from deepict.train.averaging import WeightAverage, averaged_network
from deepict.train.calibrate import UNCALIBRATED_THRESHOLD, calibrate_postprocess, sphere_volume
from deepict.train.config import RESUMABLE_CHANGES, TrainConfig, default_epochs
from deepict.train.hard_negatives import HARD_NEGATIVE_SHARE, find_hard_negatives, mining_epochs
from deepict.train.loop import TrainingTask, Validation, resumable_state, run_training
from deepict.train.state import check_fresh_start


#: Batches of training boxes over which the averaged network's batch-norm statistics are estimated.
BATCH_NORM_BATCHES = 40


@dataclass
class TrainingTomogram:
    """One annotated tomogram: voxels (z, y, x), targets (C, z, y, x), where the labels are and, for
    particle trainings, how many particles of each class it holds."""

    name: str
    data: np.ndarray
    targets: np.ndarray
    label_points_zyx: np.ndarray
    voxel_size: float | None
    particle_counts: tuple = ()


class PatchSampler:
    """Draws training boxes (with labels) from the training part of each tomogram."""

    def __init__(self, tomograms: list, config: TrainConfig, rng: np.random.Generator, stats: list):
        self.tomograms = tomograms
        self.config = config
        self.rng = rng
        self.stats = stats  # (mean, std) per tomogram
        self.train_width = [_train_width(t.data.shape[2], config) for t in tomograms]
        #: Per tomogram, centres (z, y, x) of false positives of the network so far (:mod:`.hard_negatives`).
        self.hard_negatives = [np.zeros((0, 3), int) for _ in tomograms]

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One batch: inputs (B, 1, P, P, P) float32 and targets (B, C, P, P, P) float32."""
        p, batch = self.config.patch_size, self.config.batch_size
        inputs = np.empty((batch, 1, p, p, p), np.float32)
        targets = np.empty((batch, len(self.config.classes), p, p, p), np.float32)
        for i in range(batch):
            index = int(self.rng.integers(len(self.tomograms)))
            tomo = self.tomograms[index]
            limits = np.array(tomo.data.shape[:2] + (self.train_width[index],))
            origin = self._origin(tomo, limits, self.hard_negatives[index])
            box = tuple(slice(o, o + p) for o in origin)
            mean, std = self.stats[index]
            image = (np.asarray(tomo.data[box], np.float32) - mean) / std
            label = tomo.targets[(slice(None),) + box].astype(np.float32)
            if self.config.augment:
                image, label = augment(image, label, self.rng, self.config.coarser_sampling)
            inputs[i, 0], targets[i] = image, label
        return inputs, targets

    def _origin(self, tomo: TrainingTomogram, limits: np.ndarray, hard_negatives: np.ndarray) -> np.ndarray:
        p = self.config.patch_size
        high = np.maximum(limits - p, 0)
        points = tomo.label_points_zyx
        points = points[points[:, 2] < limits[2]] if len(points) else points
        if len(points) and self.rng.random() < self.config.positive_fraction:
            centre = points[self.rng.integers(len(points))]
        elif len(hard_negatives) and self.rng.random() < HARD_NEGATIVE_SHARE:
            centre = hard_negatives[self.rng.integers(len(hard_negatives))]
        else:
            return self.rng.integers(0, high + 1).astype(int)
        # The centre lands anywhere in the central half of the box.
        origin = centre - self.rng.integers(p // 4, p - p // 4, size=3)
        return np.clip(origin, 0, high).astype(int)


def augment(image: np.ndarray, label: np.ndarray, rng: np.random.Generator,
            coarser_sampling: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Random flips along z, y, x, a random multiple of 90° about z, a random low-pass (half of the
    boxes, when ``coarser_sampling`` > 1) and intensity jitter."""
    for axis in range(3):
        if rng.random() < 0.5:
            image, label = np.flip(image, axis), np.flip(label, axis + 1)
    turns = int(rng.integers(4))
    image, label = np.rot90(image, turns, axes=(1, 2)), np.rot90(label, turns, axes=(2, 3))
    if coarser_sampling > 1 and rng.random() < 0.5:
        image = as_if_coarser(image, rng.uniform(1.0, coarser_sampling))
    gain, offset, noise = rng.uniform(0.85, 1.15), rng.uniform(-0.15, 0.15), rng.uniform(0, 0.15)
    image = image * gain + offset + rng.normal(0, noise, image.shape).astype(np.float32)
    return np.ascontiguousarray(image, np.float32), np.ascontiguousarray(label)


def as_if_coarser(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` as it looks after sampling at ``factor`` times its voxel size and rescaling back.

    Frequencies beyond the coarser grid's Nyquist (0.5 / factor cycles per voxel) are removed, as the
    DCT crop of :mod:`deepict.infer.rescale` removes them, and the box keeps its standard deviation:
    a rescaled tomogram is z-scored again as a whole before it reaches the network.
    """
    spectrum = np.fft.rfftn(image)
    frequencies = np.meshgrid(*[np.fft.fftfreq(n) for n in image.shape[:-1]], np.fft.rfftfreq(image.shape[-1]),
                              indexing="ij", sparse=True)
    beyond = np.zeros(spectrum.shape, bool)
    for frequency in frequencies:
        beyond |= np.abs(frequency) > 0.5 / factor
    spectrum[beyond] = 0
    low = np.fft.irfftn(spectrum, image.shape).astype(np.float32)
    spread, low_spread = float(image.std()), float(low.std())
    if low_spread > 0:
        low = (low - low.mean()) * (spread / low_spread) + image.mean()
    return low


def _train_width(width_x: int, config: TrainConfig) -> int:
    """Voxels along x used for training; the rest (high x) is the validation slab."""
    if config.val_fraction <= 0:
        return width_x
    val_width = max(config.patch_size, int(round(config.val_fraction * width_x)))
    return width_x - val_width if width_x - val_width >= config.patch_size else width_x


def validation_boxes(tomograms: list, config: TrainConfig, max_per_tomogram: int = 12) -> list:
    """A fixed list of (tomogram index, origin) boxes inside the validation slabs."""
    p = config.patch_size
    boxes = []
    for index, tomo in enumerate(tomograms):
        z, y, x = tomo.data.shape
        x_start = _train_width(x, config)
        if x_start == x:
            continue
        grid = [(oz, oy, ox) for oz in _grid_starts(z, p) for oy in _grid_starts(y, p)
                for ox in _grid_starts(x - x_start, p, offset=x_start)]
        chosen = np.random.default_rng(index).permutation(len(grid))[:max_per_tomogram]
        boxes += [(index, grid[i]) for i in sorted(chosen)]
    return boxes


def _grid_starts(length: int, size: int, offset: int = 0) -> list:
    count = max(1, math.ceil(length / size))
    return sorted({offset + min(i * size, length - size) for i in range(count)})


def pad_to_patch(data: np.ndarray, targets: np.ndarray, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """Reflect-pad a tomogram (and zero-pad its targets) that is smaller than one patch along an axis."""
    pad = [(0, max(0, patch - s)) for s in data.shape]
    if not any(after for _, after in pad):
        return data, targets
    return np.pad(np.asarray(data), pad, mode="reflect"), np.pad(targets, [(0, 0)] + pad)


class _Training3D(TrainingTask):
    kind, unit, final_step = KIND_3D, "batches", "the final calibration"

    def __init__(self, tomograms: list, stats: list, config: TrainConfig, info: ModelInfo, device, log):
        self.config, self.tomograms, self.info, self.device, self.log = config, tomograms, info, device, log
        self.units_per_epoch = config.iterations_per_epoch
        self.layout = memory_format(device)
        torch.manual_seed(config.seed)
        self.network = build_network(info).to(device=device, memory_format=self.layout)
        self.sampler = PatchSampler(tomograms, config, np.random.default_rng(config.seed), stats)
        self.val_boxes = validation_boxes(tomograms, config)
        if not self.val_boxes:
            log("no validation slab (tomograms too small or val_fraction 0): the model is "
                + ("the mean of the weights of the second half of the epochs" if config.weight_averaging
                   else "the last epoch's"))
        self.average = WeightAverage()

    def learning_rate_schedule(self, optimizer):
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.config.epochs,
                                                          eta_min=self.config.learning_rate / 20)

    def step_learning_rate(self, schedule, dice, warm):
        # A resumed schedule ends at the saved epoch count: stretch it to this run's count, so that
        # resuming with more epochs keeps annealing instead of restarting the cosine (a warm restart).
        schedule.T_max = self.config.epochs
        schedule.step()

    def batches(self, epoch):
        for _ in range(self.config.iterations_per_epoch):
            inputs, targets = self.sampler.sample()
            yield (torch.from_numpy(inputs).to(self.device).contiguous(memory_format=self.layout),
                   torch.from_numpy(targets).to(self.device), None, 1)

    def validate(self, network=None):
        if not self.val_boxes:
            return Validation(None)
        label = "validating the averaged model" if network is not None else "validation"
        return Validation(validation_dice(network or self.network, self.tomograms, self.sampler.stats,
                                          self.val_boxes, self.config, self.device,
                                          Progress(label, len(self.val_boxes), "boxes", self.log, first_line=False)))

    def epoch_done(self, epoch):
        first = self.config.epochs // 2 + 1
        if self.config.weight_averaging and epoch >= first:
            if self.average.count and self.average.first_epoch < first:
                self.average = WeightAverage()  # resumed with more epochs: the second half starts later
            self.average.add(self.network, epoch)
        # Particles only: measured there, and structure masks are often partial (unlabelled membrane would be mined).
        if self.config.hard_negatives and self.config.label_kind == "spheres" and epoch in mining_epochs(
                self.config.epochs):
            self._mine_hard_negatives(epoch)

    def _mine_hard_negatives(self, epoch):
        min_voxels = _default_postprocess(self.config)["min_size"]  # half a sphere: what an uncalibrated pick reports
        found = find_hard_negatives(self.network, self.tomograms, self.sampler.stats, self.sampler.train_width,
                                    min_voxels, self.device, self.log)
        self.sampler.hard_negatives = found
        self.log(f"after epoch {epoch}: {sum(map(len, found))} hard negatives (clusters the network predicts "
                 f"outside every label); {HARD_NEGATIVE_SHARE:.0%} of the background boxes now centre on them")
        if epoch == min(mining_epochs(self.config.epochs)):
            # Measured on dev with half of the ribosomes annotated: 105 of 140 hard negatives were ribosomes.
            self.log("hard negatives assume that every particle is annotated; where many are not, they are mostly "
                     "the unannotated particles, and the network learns to miss them: then train with hard "
                     "negatives off (--no-hard-negatives; Train 3D: 'Train on hard negatives' No)")

    def _batch_norm_inputs(self):
        """Training boxes for the averaged network's batch-norm statistics, drawn with their own generator
        so that a resumed or longer training samples as before."""
        sampler = PatchSampler(self.tomograms, self.config, np.random.default_rng(self.config.seed + 1),
                               self.sampler.stats)
        progress = Progress("batch-norm statistics of the averaged model", BATCH_NORM_BATCHES, "batches", self.log,
                            first_line=False)
        for _ in range(BATCH_NORM_BATCHES):
            inputs, _ = sampler.sample()
            yield torch.from_numpy(inputs).to(self.device).contiguous(memory_format=self.layout)
            progress.advance()

    def model_info(self, record):
        self.info.history = record.history
        self.info.training["best_epoch"] = record.best_epoch
        return self.info

    def state(self, record):
        return {"info": asdict(self.model_info(record)), "rng": self.sampler.rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(), "weight_average": self.average.state(),
                "hard_negatives": [points.tolist() for points in self.sampler.hard_negatives]}

    def restore(self, state, path):
        saved = state["info"]
        if saved["classes"] != self.info.classes or saved["architecture"] != self.info.architecture:
            raise InputFileError(path, "was saved for another architecture or other classes",
                                 "Resume with the same parameters, or delete it to start afresh.")
        trained = saved.get("training") or {}
        changed = [f"{name} {trained[name]!r} (now {value!r})" for name, value in asdict(self.config).items()
                   if name in trained and name not in RESUMABLE_CHANGES and trained[name] != value]
        if changed:  # half a training with one box sampling or loss and half with another is neither
            raise InputFileError(path, f"holds a training with other settings than this run's: {', '.join(changed)}",
                                 "Resume with its settings (only the epochs, the patience, the device and weight "
                                 "averaging may change), or delete it to train afresh (in Scipion: Restart the run).")
        torch.set_rng_state(state["torch_rng"])
        self.sampler.rng.bit_generator.state = state["rng"]
        self.average.restore(state.get("weight_average"))
        if state.get("hard_negatives"):
            self.sampler.hard_negatives = [np.asarray(points, int).reshape(-1, 3) for points in state["hard_negatives"]]

    def finish(self, network, info, record):
        # The setting of this run decides: a training resumed with averaging switched off keeps its best epoch.
        averaged = averaged_network(self.average, self.network, self._batch_norm_inputs) \
            if self.config.weight_averaging else None
        if averaged is not None:
            dice = self.validate(averaged).dice
            first = self.average.first_epoch
            self.log(f"the model is {averaged_weights(first, record.epoch)}, its batch-norm statistics estimated "
                     "anew" + (f": validation Dice {dice:.4f} (the best epoch as trained, {record.best_epoch}: "
                               f"{record.best_dice:.4f})" if dice is not None else ""))
            network = averaged
            info.training["weight_average"] = {"first_epoch": first, "last_epoch": record.epoch,
                                               "val_dice": None if dice is None else round(dice, 6)}
        elif "weight_average" in info.training:  # a finished training's OUT: the average replaced the best epoch
            kept = info.training["weight_average"]
            self.log(f"the finished training's model stays {averaged_weights(kept['first_epoch'], kept['last_epoch'])}"
                     ": it replaced the best epoch, which was not kept (to keep the best epoch, train "
                     "again, not resumed, without weight averaging)")
        apply_calibration(info, calibrate_on_training_tomograms(network.to(self.device), self.tomograms,
                                                                self.sampler.stats, self.config, self.device, self.log))
        return network, info


def train(tomograms: list, config: TrainConfig, out_path, resume: bool = False, log=None,
          spectrum: dict | None = None) -> ModelInfo:
    """Train a 3D U-Net and write the best model to ``out_path`` (see the module docstring).

    ``spectrum``: the reference spectrum the training tomograms were equalized to, stored as
    ``ModelInfo.spectrum`` (see :func:`~deepict.infer.model_spectrum.spectrum_record`).
    """
    log = log or print_line
    config.validate()
    if not tomograms:
        raise ParameterError("no training tomograms were given")
    if config.epochs is None:
        config = replace(config, epochs=_epochs_for(tomograms, config, log))
    voxel_sizes = {round(t.voxel_size, 3) for t in tomograms if t.voxel_size}
    if len(voxel_sizes) > 1:
        raise ParameterError(f"the training tomograms have different voxel sizes {sorted(voxel_sizes)} Å: "
                             "bin or rescale them to one voxel size first")
    for t in tomograms:
        if not t.targets.any():
            raise InputFileError(t.name, "has no labelled voxel", "Give coordinates or a non-empty mask for it.")
    check_fresh_start(out_path, resume)
    resumed = resumable_state(out_path, KIND_3D, log) if resume else None
    # Padding and the z-score statistics read every voxel: tens of seconds on big tomograms.
    preparing = Progress("preparing the training tomograms", len(tomograms), "tomograms", log)
    padded, stats, spectra = [], [], []
    for t in tomograms:
        if t.voxel_size:
            spectra.append(radial_spectrum(t.data, t.voxel_size, workers=default_workers()))
        padded.append(padded_tomogram(t, config.patch_size))
        stats.append(volume_mean_std(padded[-1].data))
        preparing.advance()
    training_spectrum = spectrum_record(mean_spectrum(spectra, "mean spectrum of the training tomograms")) \
        if spectra else None
    info = ModelInfo(
        kind=KIND_3D, classes=list(config.classes),
        architecture={"depth": config.depth, "initial_features": config.initial_features,
                      "out_channels": len(config.classes), "batch_norm": config.batch_norm,
                      "encoder_dropout": config.encoder_dropout, "decoder_dropout": config.decoder_dropout},
        voxel_size=voxel_sizes.pop() if voxel_sizes else None, patch_size=config.patch_size, overlap=12,
        label_kind=config.label_kind, sphere_radius=dict(config.sphere_radius),
        postprocess=_default_postprocess(config), spectrum=spectrum, training_spectrum=training_spectrum,
        training={**asdict(config), COMPLETE: False, LABEL_SHARE: label_shares(tomograms, config.classes)})
    task = _Training3D(padded, stats, config, info, select_device(config.device), log)
    return run_training(task, out_path, resumed, log)


def label_shares(tomograms: list, classes) -> dict:
    """{class: the share of the tomograms' voxels its labels cover} (``ModelInfo.training[LABEL_SHARE]``)."""
    total = sum(t.targets[0].size for t in tomograms)
    return {name: float(sum(np.count_nonzero(t.targets[index]) for t in tomograms) / total)
            for index, name in enumerate(classes)}


def _epochs_for(tomograms: list, config: TrainConfig, log) -> int:
    """The epochs of a training whose --epochs was not given (:func:`~deepict.train.config.default_epochs`)."""
    counts = [t.particle_counts for t in tomograms if t.particle_counts]
    per_tomogram = {name: float(np.mean([c[index] for c in counts])) for index, name in enumerate(config.classes)} \
        if counts else {}
    epochs, why = default_epochs(per_tomogram)
    log(f"{epochs} epochs {why} (give --epochs to choose)")
    return epochs


def padded_tomogram(tomo: TrainingTomogram, patch_size: int) -> TrainingTomogram:
    """``tomo`` padded to whole training boxes (:func:`pad_to_patch`), as training and calibration read it."""
    return TrainingTomogram(tomo.name, *pad_to_patch(tomo.data, tomo.targets, patch_size), tomo.label_points_zyx,
                            tomo.voxel_size)


def apply_calibration(info: ModelInfo, calibration: dict | None) -> None:
    """Make a calibration (:func:`calibrate_on_training_tomograms`) the model's post-processing and record it."""
    if calibration:
        info.postprocess.update({key: calibration[key] for key in ("threshold", "min_size", "min_distance")})
        info.training[POSTPROCESS_CALIBRATION] = calibration


def calibrate_on_training_tomograms(network, tomograms, stats, config: TrainConfig, device, log):
    """Choose the threshold, minimum cluster size and duplicate distance of a one-class particle model on
    its validation slabs, or (too few particles there) the minimum size on the whole training tomograms
    (see :mod:`.calibrate`); ``None`` for structure or multi-class models, or without slabs. ``tomograms``
    are padded (:func:`padded_tomogram`), ``stats`` their (mean, std)."""
    if config.label_kind != "spheres" or len(config.classes) != 1 or not config.sphere_radius:
        return None
    radius = float(min(config.sphere_radius.values()))
    slabs = []
    for tomo, tomo_stats in zip(tomograms, stats):
        width = tomo.data.shape[2]
        x_start = _train_width(width, config)
        if x_start == width:
            continue
        # A little training data on the low-x side, so that the slab's edge is predicted with context.
        x0 = max(0, x_start - int(math.ceil(radius)))
        points = tomo.label_points_zyx[tomo.label_points_zyx[:, 2] >= x0] - (0, 0, x0)
        slabs.append((tomo.data[:, :, x0:], tomo_stats, x_start - x0 + radius, points))
    if not slabs:
        return None
    # Whole tomograms, scored from a radius in (particles cut by the low-x face do not count).
    whole = [(tomo.data, tomo_stats, radius, tomo.label_points_zyx) for tomo, tomo_stats in zip(tomograms, stats)]
    return calibrate_postprocess(network, slabs, radius, device, log, whole_tomograms=whole)


def validation_dice(network, tomograms, stats, boxes, config: TrainConfig, device,
                    progress: Progress | None = None) -> float:
    """Mean over classes of the Dice of thresholded (p > 0.5) predictions on the validation boxes (``progress``
    counts them)."""
    network.eval()
    p = config.patch_size
    channels = len(config.classes)
    intersection, total = np.zeros(channels), np.zeros(channels)
    with torch.inference_mode():
        for index, origin in boxes:
            box = tuple(slice(o, o + p) for o in origin)
            mean, std = stats[index]
            image = (np.asarray(tomograms[index].data[box], np.float32) - mean) / std
            inputs = torch.from_numpy(image)[None, None].to(device).contiguous(memory_format=memory_format(device))
            prediction = network(inputs)[0].cpu().numpy() > 0
            truth = tomograms[index].targets[(slice(None),) + box] > 0
            intersection += (prediction & truth).reshape(channels, -1).sum(1)
            total += prediction.reshape(channels, -1).sum(1) + truth.reshape(channels, -1).sum(1)
            if progress is not None:
                progress.advance()
    return float(np.mean(np.where(total > 0, 2 * intersection / np.maximum(total, 1), 1.0)))


def _default_postprocess(config: TrainConfig) -> dict:
    if config.label_kind == "spheres" and config.sphere_radius:
        smallest = min(config.sphere_radius.values())
        # Until calibrated (calibrate.py), or where it cannot be: a particle must fill half a training sphere;
        # smaller blobs are mostly noise.
        return {"threshold": UNCALIBRATED_THRESHOLD, "min_size": max(5, int(0.5 * sphere_volume(smallest))),
                "max_size": None}
    return {"threshold": UNCALIBRATED_THRESHOLD, "min_size": 50, "max_size": None}
