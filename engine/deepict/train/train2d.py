"""Training the 2D compartment U-Net from tomograms and binary masks (``deepict train2d``).

What DeePiCt's 2D training does, with its defects removed (the epochs, checkpoints, resume and early
stopping are the shared loop's, :mod:`.loop`):

- tiles of the training slices (:mod:`.data2d`), each with its own random flips and 90° rotation
  (:mod:`.tiles2d`); every epoch's random draws depend only on (seed, epoch), so a resumed run draws what
  the uninterrupted run would have;
- Adam on logits with binary cross-entropy + Dice by default (DeePiCt's pure Dice loss is an option),
  He-initialised weights (see :func:`initialise`), a high initial learning rate halved whenever the
  validation Dice stalls for ``lr_patience`` epochs (a constant rate learns fast but later jumps out of good
  solutions); neither the learning-rate cuts nor early stopping act during the first ``warmup_epochs``
  (default half of the epochs): a compartment can sit at a trivial all-or-nothing prediction for several
  epochs before the network starts to separate it;
- after every epoch the validation Dice on held-out data, after z smoothing and at the threshold that
  maximises it (:mod:`.validation2d`); that threshold becomes the model's default.
"""

from __future__ import annotations

from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from deepict.errors import ParameterError
from deepict.infer.compartments import DEFAULT_THRESHOLD
from deepict.infer.masks import format_remap, parse_remap
from deepict.infer.model_spectrum import spectrum_record
from deepict.nn.devices import select_device
from deepict.nn.model_files import KIND_2D, LABEL_SHARE, ModelInfo, build_network
from deepict.progress import format_duration
from deepict.spectrum import DEFAULT_LOWPASS_WIDTH
from deepict.train.config import Train2DConfig
from deepict.train.data2d import label_share, load_training_slices, training_equalization_2d
from deepict.train.loop import Record, TrainingTask, Validation, resumable_state, run_training
from deepict.train.state import check_fresh_start, state_path
from deepict.train.tiles2d import sample_tiles
from deepict.train.validation2d import validate_slices

#: The learning rate is halved on plateaus down to ``learning_rate / LR_MIN_DIVISOR``.
LR_MIN_DIVISOR = 32

def initialise(network: torch.nn.Module, scheme: str = "kaiming") -> None:
    """He (Kaiming) normal weights and zero biases for every hidden convolution; the output layer keeps
    torch's small default so that training starts near probability 0.5.

    Without batch norm, torch's default initialisation shrinks the activations about 100-fold through
    the encoder of the 5-level U-Net and training barely starts within a CPU budget; He initialisation
    keeps their scale (the architecture itself is unchanged).
    """
    if scheme == "torch":
        return
    if scheme != "kaiming":
        raise ParameterError(f"unknown initialisation {scheme!r}: use kaiming or torch")
    output = getattr(network, "out_conv", None)
    for module in network.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and module is not output:
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)


def _model_info(config: Train2DConfig, voxel_size, history, training, threshold=None, spectrum=None) -> ModelInfo:
    if config.threshold is not None:
        threshold = config.threshold
    return ModelInfo(
        kind=KIND_2D, classes=[config.class_name],
        architecture={"depth": config.depth, "initial_features": config.initial_features, "out_channels": 1},
        voxel_size=voxel_size, patch_size=config.tile_size, overlap=config.crop, label_kind="masks",
        sphere_radius={}, normalization="tomogram_zscore",
        postprocess={"threshold": float(DEFAULT_THRESHOLD if threshold is None else threshold),
                     "sigma": config.sigma},
        history=list(history), training=dict(training), spectrum=spectrum)


class _Training2D(TrainingTask):
    kind, unit, final_step = KIND_2D, "tiles", "writing the final model"
    min_gain = 1e-4

    def __init__(self, config: Train2DConfig, train, val, voxel_size, training: dict, device, spectrum=None):
        self.config, self.train, self.val, self.voxel_size, self.training = config, train, val, voxel_size, training
        self.spectrum = spectrum  # ModelInfo.spectrum: the reference the training tomograms were equalized to
        self.device = device
        self.units_per_epoch = config.tiles_per_epoch
        self.warmup_epochs = config.epochs // 2 if config.warmup_epochs is None else config.warmup_epochs
        torch.manual_seed(config.seed)
        network = build_network(_model_info(config, voxel_size, [], {}))
        initialise(network, config.init)
        self.network = network.to(device)

    def learning_rate_schedule(self, optimizer):
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=0.5, patience=max(self.config.lr_patience - 1, 0), threshold=1e-4,
            threshold_mode="abs", min_lr=self.config.learning_rate / LR_MIN_DIVISOR)

    def step_learning_rate(self, schedule, dice, warm):
        if self.config.lr_patience > 0 and not warm:
            schedule.step(dice)

    def batches(self, epoch):
        config = self.config
        rng = np.random.default_rng([config.seed, epoch])
        torch.manual_seed(config.seed * 100003 + epoch)
        remaining = config.tiles_per_epoch
        while remaining > 0:
            count = min(config.batch_size, remaining)
            remaining -= count
            images, targets, weights = sample_tiles(self.train, count, config.tile_size, config.augment, rng)
            yield (torch.from_numpy(images).to(self.device), torch.from_numpy(targets).to(self.device),
                   None if weights is None else torch.from_numpy(weights).to(self.device), count)

    def validate(self):
        dice, threshold, loss = validate_slices(self.network, self.val, self.config, self.device)
        return Validation(dice, {"val_threshold": threshold, "val_loss": round(loss, 6)},
                          f" (threshold {threshold:.2f})")

    def model_info(self, record):
        training = dict(self.training, best_epoch=record.best_epoch, best_val_dice=record.best_dice,
                        epochs_run=record.epoch)
        return _model_info(self.config, self.voxel_size, record.history, training, _best_threshold(record),
                           self.spectrum)

    def state(self, record):
        return {"best_threshold": _best_threshold(record),
                "config": {"settings": self.training["settings"], "tomogram_names": self.training["tomogram_names"]}}

    def finish(self, network, info, record):
        training = dict(self.training, best_epoch=record.best_epoch, best_val_dice=record.best_dice,
                        epochs_run=record.epoch, stopped_early=record.stopped_early, seconds=round(record.seconds, 1),
                        remap=format_remap(parse_remap(self.config.remap)))
        return network, _model_info(self.config, self.voxel_size, record.history, training, _best_threshold(record),
                                    self.spectrum)


def _best_threshold(record: Record) -> float | None:
    """The validation threshold of the best epoch."""
    return next((h.get("val_threshold") for h in record.history if h["epoch"] == record.best_epoch), None)


def _resumed_config(config: Train2DConfig, state: dict, tomograms, path) -> Train2DConfig:
    """``config`` with the settings of the interrupted training, but for ``epochs``, ``patience`` and ``device``."""
    stored = state["config"]
    names = [Path(p).name for p in tomograms]
    if stored.get("tomogram_names") != names:
        raise ParameterError(f"{path} was trained on {stored.get('tomogram_names')}, not {names}: "
                             "give the same tomograms, or train without --resume")
    known = {f.name for f in fields(Train2DConfig)} - {"epochs", "patience", "device"}
    return replace(config, **{k: v for k, v in stored["settings"].items() if k in known})


def train_2d(tomograms, masks, out, config: Train2DConfig | None = None, resume: bool = False,
             log: Callable[[str], None] | None = print, device: torch.device | None = None,
             training_voxel_size: float | None = None, equalize_to: str | None = None,
             spectrum_lowpass_angstrom: float | None = None,
             spectrum_lowpass_width: float = DEFAULT_LOWPASS_WIDTH) -> ModelInfo:
    """Train a 2D U-Net on ``tomograms`` + binary ``masks``; write the best model to ``out`` and return its
    description.

    ``device`` (an already chosen torch device) overrides ``config.device``. Tomograms at another voxel
    size than ``training_voxel_size`` (default: the first tomogram's) are rescaled to it. ``equalize_to``
    (``auto`` or a reference file) equalizes them in memory to that spectrum, which the model stores so
    that ``segment2d`` equalizes new tomograms to it (see :mod:`.equalization`). With ``resume``,
    continue from ``<out>.last.pt`` (architecture, tiles, learning rate and the other
    training settings come from the state; ``epochs`` and ``patience`` from ``config``).
    """
    log = log or (lambda _text: None)
    config = replace(config or Train2DConfig())
    check_fresh_start(out, resume)
    resumed = resumable_state(out, KIND_2D, log) if resume else None
    if resumed is not None:
        config = _resumed_config(config, resumed, tomograms, state_path(out))
    config.validate()
    device = torch.device(device) if device is not None else select_device(config.device)
    equalization = training_equalization_2d(tomograms, equalize_to, spectrum_lowpass_angstrom,
                                            spectrum_lowpass_width, log)
    train, val, voxel_size = load_training_slices(tomograms, masks, config, log, training_voxel_size, equalization)
    spectrum = None if equalization is None else spectrum_record(
        equalization.reference, spectrum_lowpass_angstrom, spectrum_lowpass_width,
        source=equalization.reference.metadata["source"])
    training = {"settings": asdict(config), "tomogram_names": [Path(p).name for p in tomograms],
                "train_tomograms": [s.name for s in train], "val_tomograms": sorted({s.name for s in val}),
                "train_slices": int(sum(len(s.z) for s in train)), "val_slices": int(sum(len(s.z) for s in val)),
                LABEL_SHARE: {config.class_name: label_share(train + val)}}
    log(f"training a 2D U-Net (depth {config.depth}, {config.initial_features} filters) for '{config.class_name}' "
        f"on {training['train_slices']} slices, {config.tiles_per_epoch} tiles of {config.tile_size} px per epoch, "
        f"up to {config.epochs} epochs, device {device}")
    info = run_training(_Training2D(config, train, val, voxel_size, training, device, spectrum), out, resumed, log)
    run = info.training
    log(f"wrote {out}: best validation Dice {run['best_val_dice']:.4f} at epoch {run['best_epoch']} of "
        f"{run['epochs_run']}, mask threshold {info.postprocess['threshold']:g}"
        f"{' (calibrated on validation)' if config.threshold is None else ''} ({format_duration(run['seconds'])})")
    everything = everything_dice(val)
    if run["best_val_dice"] is not None and run["best_val_dice"] <= everything + TRIVIAL_DICE_MARGIN:
        log(f"warning: {out}: its best validation Dice {run['best_val_dice']:.4f} is no better than marking every "
            f"voxel as {config.class_name} ({everything:.4f}): the network has not learnt to separate the "
            "compartment yet. Train longer (--epochs, --tiles-per-epoch) before segmenting with it.")
    return info


#: A 2D network whose validation Dice is within this of the Dice of marking every voxel has learnt nothing.
TRIVIAL_DICE_MARGIN = 0.01


def everything_dice(slices: list) -> float:
    """The Dice of the mask that marks every voxel of ``slices`` (:class:`~.data2d.TrainingSlices`) against their
    labels: what a network that has not learnt anything yet reaches at a low threshold."""
    share = label_share(slices)
    return 2 * share / (1 + share)


__all__ = ["Train2DConfig", "train_2d"]
