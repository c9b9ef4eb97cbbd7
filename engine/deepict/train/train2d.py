"""Training the 2D compartment U-Net from tomograms and binary masks (``deepict train2d``).

What DeePiCt's 2D training does, with its defects removed:

- every ``z_stride``-th slice of each training tomogram (z-scored with the whole tomogram's
  statistics, as at prediction) is a source of tiles; each epoch draws ``tiles_per_epoch``
  tiles at random slices and positions (slices smaller than a tile are reflect-padded and
  the padding carries no loss), each with its own random flips and 90° rotation (DeePiCt
  used one transform per batch, and none for production models);
- Adam on logits with binary cross-entropy + Dice by default (DeePiCt's pure Dice loss is an
  option; it learns slower in a short CPU budget), He-initialised weights (see :func:`initialise`),
  a high initial learning rate halved whenever the validation Dice stalls for ``lr_patience``
  epochs (a constant 1e-3 learns fast but later jumps out of good solutions); neither the
  learning-rate cuts nor early stopping act during the first ``warmup_epochs`` (default half of
  the epochs): a compartment can sit at a trivial all-or-nothing prediction for several epochs
  before the network starts to separate it;
- after every epoch the validation Dice on held-out data, after z smoothing and at the
  threshold that maximises it (that threshold becomes the model's default); the held-out data are
  the named tomogram(s), by default the last tomogram when several are given, else a
  z range (60-80 % of the depth, with a gap of ``z_stride`` slices to the training
  slices), which gives an optimistic estimate;
- the best network (highest validation Dice) is written to ``out`` whenever it improves; the
  last state (network, optimizer, history) to ``<out>.last.pt`` after every epoch, so that a
  killed run continues with ``resume=True`` (see :mod:`.training_state`); early stopping after ``patience`` epochs
  without improvement; every epoch's random draws depend only on (seed, epoch), so a resumed
  run draws what the uninterrupted run would have.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from deepict.conventions import fits_model_voxel_size
from deepict.infer.compartments import DEFAULT_THRESHOLD
from deepict.infer.masks import binary_mask, check_mask_matches, format_remap, parse_remap
from deepict.infer.normalization import normalized_slices, tomogram_zscore
from deepict.infer.tiling import auto_tile_size, check_tile_geometry
from deepict.nn.devices import select_device
from deepict.errors import InputFileError, ParameterError
from deepict.io import read_volume
from deepict.nn.losses import get_loss
from deepict.nn.model_files import KIND_2D, ModelInfo, build_network, load_model, save_model
from deepict.infer.slices2d import predict_array
from deepict.progress import Progress, format_duration
from deepict.train.config import Train2DConfig
from deepict.train.state import COMPLETE, read_state, state_path, state_to_resume, write_state

#: The learning rate is halved on plateaus down to ``learning_rate / LR_MIN_DIVISOR``.
LR_MIN_DIVISOR = 32

#: Fraction of the depth held out for validation when only one tomogram is given.
SINGLE_TOMOGRAM_VALIDATION = (0.6, 0.8)


@dataclass
class _Slices:
    name: str
    images: np.ndarray                  # (n, y, x) float32, z-scored
    masks: np.ndarray                   # (n, y, x) uint8 0/1
    z: list


def _check_config(config: Train2DConfig) -> None:
    for name in ("epochs", "tiles_per_epoch", "z_stride", "batch_size", "val_slices", "depth", "initial_features"):
        if int(getattr(config, name)) < 1:
            raise ParameterError(f"{name.replace('_', '-')} must be at least 1, not {getattr(config, name)}")
    if config.patience < 0:
        raise ParameterError(f"patience must be >= 0 (0 = no early stopping), not {config.patience}")
    if config.warmup_epochs is not None and config.warmup_epochs < 0:
        raise ParameterError(f"warm-up epochs must be >= 0, not {config.warmup_epochs}")
    if config.lr_patience < 0:
        raise ParameterError(f"lr-patience must be >= 0 (0 = constant learning rate), not {config.lr_patience}")
    if not config.learning_rate > 0:
        raise ParameterError(f"the learning rate must be positive, not {config.learning_rate}")
    if config.threshold is not None and not 0 <= config.threshold < 1:
        raise ParameterError(f"the threshold must lie in [0, 1), not {config.threshold}")
    if config.sigma < 0:
        raise ParameterError(f"sigma must be >= 0, not {config.sigma}")
    check_tile_geometry(config.tile_size, None, config.depth)
    if not 0 <= config.crop < 256:
        raise ParameterError(f"the prediction rim must lie in [0, 256) px, not {config.crop}")
    get_loss(config.loss)
    parse_remap(config.remap)
    if config.init not in ("kaiming", "torch"):
        raise ParameterError(f"unknown initialisation {config.init!r}: use kaiming or torch")


def _validation_indices(tomograms: list, val_names: list) -> list[int]:
    if not val_names:
        return [len(tomograms) - 1] if len(tomograms) >= 2 else []
    chosen = []
    for name in val_names:
        matches = [i for i, path in enumerate(tomograms)
                   if str(name) in (str(path), Path(path).name, Path(path).stem)
                   or Path(name).resolve() == Path(path).resolve()]
        if not matches:
            raise ParameterError(f"validation tomogram {name!r} is not one of the training tomograms "
                                 f"({', '.join(Path(p).name for p in tomograms)}); name one of them")
        chosen.extend(m for m in matches if m not in chosen)
    if len(chosen) == len(tomograms):
        raise ParameterError("every tomogram is a validation tomogram: leave at least one for training")
    return chosen


def _load_pairs(tomograms, masks, config: Train2DConfig, log) -> tuple[list[_Slices], list[_Slices], float | None]:
    if len(tomograms) == 0:
        raise ParameterError("give at least one tomogram and its mask")
    if len(tomograms) != len(masks):
        raise ParameterError(f"{len(tomograms)} tomograms but {len(masks)} masks: give one mask per tomogram, "
                             "in the same order")
    mapping = parse_remap(config.remap)
    val_index = _validation_indices(list(tomograms), list(config.val_tomograms or []))
    voxel_sizes = []
    train, val = [], []
    loading = Progress("reading the training tomograms and masks", len(tomograms), "tomograms", log)
    for index, (tomo_path, mask_path) in enumerate(zip(tomograms, masks)):
        tomogram = read_volume(tomo_path)
        mask_volume = read_volume(mask_path)
        check_mask_matches(mask_volume, tomogram)
        labels = binary_mask(mask_volume.data, mask_volume.path, mapping)
        if not labels.any():
            raise InputFileError(mask_path, "has no positive voxels" + (" after the remapping" if mapping else ""),
                                 "Give a mask in which the compartment is marked with 1 (or fix --remap).")
        voxel_sizes.append(tomogram.voxel_size)
        mean, std = tomogram_zscore(tomogram.data, tomo_path)
        depth = tomogram.data.shape[0]
        name = Path(tomo_path).name
        stride = config.z_stride
        if val_index:
            train_z = list(range(0, depth, stride)) if index not in val_index else []
            val_z = list(range(0, depth, stride)) if index in val_index else []
        else:  # one tomogram: hold out a z range
            start = min(int(SINGLE_TOMOGRAM_VALIDATION[0] * depth), depth - 1)
            end = max(start + 1, int(SINGLE_TOMOGRAM_VALIDATION[1] * depth))
            val_z = list(range(start, end))
            train_z = [z for z in range(0, depth, stride) if z < start - stride or z >= end + stride]
            if not train_z:
                raise ParameterError(f"{tomo_path}: too few slices ({depth}) to hold out a validation range: "
                                     "give a second tomogram for validation or a smaller --z-stride")
            log(f"validation on slices {start}..{end - 1} of {name} (the only tomogram); "
                f"training on {len(train_z)} slices outside {start - stride}..{end + stride - 1}")
        if len(val_z) > config.val_slices:
            val_z = [val_z[i] for i in np.round(np.linspace(0, len(val_z) - 1, config.val_slices)).astype(int)]
        for z_list, target in ((train_z, train), (val_z, val)):
            if z_list:
                target.append(_Slices(name, normalized_slices(tomogram.data, mean, std, z_list),
                                      np.ascontiguousarray(labels[z_list]), list(z_list)))
        del labels
        loading.advance()
    known = [v for v in voxel_sizes if v]
    voxel_size = float(np.median(known)) if known else None
    for path, size in zip(tomograms, voxel_sizes):
        if size and voxel_size and not fits_model_voxel_size(size, voxel_size):
            raise InputFileError(path,
                                 f"its voxel size {size:g} Å differs from the other tomograms' {voxel_size:g} Å",
                                 "Train on tomograms of one voxel size: rescale or bin them to a common size.")
    if val_index:
        log(f"validation on {', '.join(Path(tomograms[i]).name for i in val_index)}; "
            f"training on {', '.join(s.name for s in train)}")
    return train, val, voxel_size


def _crop_or_pad(length: int, tile: int, rng) -> tuple[int, int, int]:
    """(start in the slice, pad before, pad after) for one random tile along an axis."""
    if length >= tile:
        return int(rng.integers(0, length - tile + 1)), 0, 0
    before = int(rng.integers(0, tile - length + 1))
    return 0, before, tile - length - before


def _sample_tiles(train: list[_Slices], count: int, tile: int, augment: bool, rng):
    """``count`` random (image, mask, weight) tiles, each with its own random flips / rotation."""
    sizes = np.array([len(s.z) for s in train])
    picks = rng.choice(sizes.sum(), size=count)
    bounds = np.cumsum(sizes)
    images = np.empty((count, 1, tile, tile), dtype=np.float32)
    masks = np.empty_like(images)
    weights = np.empty_like(images)
    padded = False
    for i, pick in enumerate(picks):
        which = int(np.searchsorted(bounds, pick, side="right"))
        local = int(pick - (bounds[which - 1] if which else 0))
        image, mask = train[which].images[local], train[which].masks[local]
        (y0, yb, ya), (x0, xb, xa) = (_crop_or_pad(image.shape[0], tile, rng),
                                      _crop_or_pad(image.shape[1], tile, rng))
        img = image[y0:y0 + tile, x0:x0 + tile]
        msk = mask[y0:y0 + tile, x0:x0 + tile].astype(np.float32)
        wgt = np.ones_like(msk)
        if yb or ya or xb or xa:
            padded = True
            pads = ((yb, ya), (xb, xa))
            mode = "reflect" if min(img.shape) > 1 else "edge"
            img, msk = np.pad(img, pads, mode=mode), np.pad(msk, pads, mode=mode)
            wgt = np.pad(wgt, pads, mode="constant")
        if augment:
            k = int(rng.integers(4))
            flip_y, flip_x = rng.random(2) < 0.5
            stack = np.stack([img, msk, wgt])
            if flip_y:
                stack = stack[:, ::-1]
            if flip_x:
                stack = stack[:, :, ::-1]
            img, msk, wgt = np.rot90(stack, k, axes=(1, 2))
        images[i, 0], masks[i, 0], weights[i, 0] = img, msk, wgt
    return images, masks, (weights if padded else None)


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


#: Thresholds tried when calibrating the mask threshold on the validation data.
THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))


def _validate(network, val: list[_Slices], config: Train2DConfig, device) -> tuple[float, float, float]:
    """(best Dice, its threshold, soft Dice loss) over all validation slices.

    The validation probabilities are smoothed along z as at prediction (a Gaussian of ``sigma``
    slices, applied to the strided validation slices with the sigma scaled by their spacing),
    and the Dice is taken at the threshold of :data:`THRESHOLD_GRID` that maximises it. Ranking
    epochs by this Dice does not depend on the loss giving calibrated probabilities (DeePiCt's
    Dice loss does not), and the threshold found is the model's default.
    """
    intersection = np.zeros(len(THRESHOLD_GRID))
    predicted = np.zeros(len(THRESHOLD_GRID))
    truth = soft_pt = soft_pp = 0.0
    for part in val:
        tile = auto_tile_size(part.images.shape[1:], config.tile_size, config.crop, config.depth)
        prob = predict_array(network, part.images, tile, config.crop, max(config.batch_size, 4), device)
        target = part.masks.astype(bool)
        truth += float(np.count_nonzero(target))
        soft_pt += float(prob[target].sum())
        soft_pp += float(np.square(prob, dtype=np.float64).sum())
        if config.sigma > 0 and len(part.z) > 1:
            spacing = float(np.mean(np.diff(part.z)))
            prob = gaussian_filter1d(prob, config.sigma / spacing, axis=0, mode="reflect")
        for i, threshold in enumerate(THRESHOLD_GRID):
            hard = prob > threshold
            intersection[i] += np.count_nonzero(hard & target)
            predicted[i] += np.count_nonzero(hard)
    dice = np.where(predicted + truth > 0, 2 * intersection / np.maximum(predicted + truth, 1), 1.0)
    best = int(np.argmax(dice))
    soft = 1 - 2 * soft_pt / max(soft_pp + truth, 1e-6)
    return float(dice[best]), THRESHOLD_GRID[best], soft


def _model_info(config: Train2DConfig, voxel_size, history, training, threshold=None) -> ModelInfo:
    if config.threshold is not None:
        threshold = config.threshold
    return ModelInfo(
        kind=KIND_2D, classes=[config.class_name],
        architecture={"depth": config.depth, "initial_features": config.initial_features, "out_channels": 1},
        voxel_size=voxel_size, patch_size=config.tile_size, overlap=config.crop, label_kind="masks",
        sphere_radius={}, normalization="tomogram_zscore",
        postprocess={"threshold": float(DEFAULT_THRESHOLD if threshold is None else threshold),
                     "sigma": config.sigma},
        history=list(history), training=dict(training))


def train_2d(tomograms, masks, out, config: Train2DConfig | None = None, resume: bool = False,
             log: Callable[[str], None] | None = print, device: torch.device | None = None) -> dict:
    """Train a 2D U-Net on ``tomograms`` + binary ``masks``; write the best model to ``out``.

    ``device`` (an already chosen torch device) overrides ``config.device``. With ``resume``,
    continue from ``<out>.last.pt`` (architecture, tiles, learning rate and the other
    training settings come from the checkpoint; ``epochs`` and ``patience`` from ``config``).
    Returns a summary dict.
    """
    log = log or (lambda _text: None)
    config = replace(config or Train2DConfig())
    out = Path(out)
    checkpoint_path = state_path(out)
    checkpoint = None
    if resume:
        if state_to_resume(out, log):
            checkpoint = read_state(checkpoint_path, KIND_2D)
            stored = checkpoint["config"]
            names = [Path(p).name for p in tomograms]
            if stored.get("tomogram_names") != names:
                raise ParameterError(f"{checkpoint_path} was trained on {stored.get('tomogram_names')}, not {names}: "
                                     "give the same tomograms, or train without --resume")
            known = {f.name for f in fields(Train2DConfig)} - {"epochs", "patience", "device"}
            kept = {k: v for k, v in stored["settings"].items() if k in known}
            config = replace(config, **kept)
            log(f"resuming from {checkpoint_path} after epoch {checkpoint['epoch']} of {config.epochs}")
    _check_config(config)
    torch.manual_seed(config.seed)
    device = torch.device(device) if device is not None else select_device(config.device)
    train, val, voxel_size = _load_pairs(tomograms, masks, config, log)

    info = _model_info(config, voxel_size, [], {})
    network = build_network(info)
    initialise(network, config.init)
    network = network.to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=0.5, patience=max(config.lr_patience - 1, 0), threshold=1e-4,
        threshold_mode="abs", min_lr=config.learning_rate / LR_MIN_DIVISOR)
    loss_fn = get_loss(config.loss)
    history: list = []
    start_epoch, best_dice, best_epoch, bad_epochs, previous_seconds = 0, -1.0, 0, 0, 0.0
    best_threshold = None
    if checkpoint is not None:
        network.load_state_dict(checkpoint["state_dict"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if checkpoint.get("scheduler"):
            scheduler.load_state_dict(checkpoint["scheduler"])
        start_epoch = int(checkpoint["epoch"])
        best_dice, best_epoch = float(checkpoint["best_dice"]), int(checkpoint["best_epoch"])
        best_threshold = checkpoint.get("best_threshold")
        bad_epochs, history = int(checkpoint["bad_epochs"]), list(checkpoint["history"])
        previous_seconds = float(checkpoint.get("seconds", 0.0))
        if not out.is_file():
            raise InputFileError(out, "the best model of the interrupted training is missing",
                                 "Train again without --resume.")

    settings = asdict(config)
    training = {"settings": settings, "tomogram_names": [Path(p).name for p in tomograms],
                "train_tomograms": [s.name for s in train], "val_tomograms": sorted({s.name for s in val}),
                "train_slices": int(sum(len(s.z) for s in train)), "val_slices": int(sum(len(s.z) for s in val))}
    log(f"training a 2D U-Net (depth {config.depth}, {config.initial_features} filters) for '{config.class_name}' "
        f"on {training['train_slices']} slices, {config.tiles_per_epoch} tiles of {config.tile_size} px per epoch, "
        f"up to {config.epochs} epochs, device {device}")

    warmup = config.epochs // 2 if config.warmup_epochs is None else config.warmup_epochs
    started = time.time()
    epoch_times = []
    stopped_early = config.patience > 0 and bad_epochs >= config.patience
    if stopped_early:
        log(f"the interrupted training had already stopped early at epoch {start_epoch} (patience {config.patience})")
    epoch = start_epoch
    while epoch < config.epochs and not stopped_early:
        epoch += 1
        tick = time.time()
        rng = np.random.default_rng([config.seed, epoch])
        torch.manual_seed(config.seed * 100003 + epoch)
        network.train()
        losses = []
        remaining = config.tiles_per_epoch
        # Silent unless the epoch takes longer than a progress interval.
        tiles = Progress(f"epoch {epoch}/{config.epochs}", config.tiles_per_epoch, "tiles", log, first_line=False)
        while remaining > 0:
            count = min(config.batch_size, remaining)
            remaining -= count
            images, targets, weights = _sample_tiles(train, count, config.tile_size, config.augment, rng)
            images, targets = torch.from_numpy(images).to(device), torch.from_numpy(targets).to(device)
            weights = torch.from_numpy(weights).to(device) if weights is not None else None
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(network(images), targets, weights)
            if not torch.isfinite(loss):
                raise ParameterError(f"the training loss became {float(loss)} in epoch {epoch}: lower the learning "
                                     f"rate (now {config.learning_rate:g}) and train again (or --resume)")
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()) * count)
            tiles.advance(count)
        train_loss = sum(losses) / config.tiles_per_epoch
        val_dice, val_threshold, val_loss = _validate(network, val, config, device)
        seconds = time.time() - tick
        epoch_times.append(seconds)
        learning_rate = optimizer.param_groups[0]["lr"]
        history.append({"epoch": epoch, "loss": round(train_loss, 6), "val_dice": round(val_dice, 6),
                        "val_threshold": val_threshold, "val_loss": round(val_loss, 6), "lr": learning_rate,
                        "seconds": round(seconds, 2)})
        warm = epoch <= warmup
        if config.lr_patience > 0 and not warm:
            scheduler.step(val_dice)
        improved = val_dice > best_dice + 1e-4
        if improved:
            best_dice, best_epoch, best_threshold, bad_epochs = val_dice, epoch, val_threshold, 0
            training_now = dict(training, best_epoch=best_epoch, best_val_dice=best_dice, epochs_run=epoch,
                                **{COMPLETE: False})
            save_model(out, network, _model_info(config, voxel_size, history, training_now, best_threshold))
        elif not warm:
            bad_epochs += 1
        payload = {"epoch": epoch,
                   "state_dict": {k: v.detach().cpu().clone() for k, v in network.state_dict().items()},
                   "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                   "best_dice": best_dice, "best_epoch": best_epoch,
                   "best_threshold": best_threshold, "bad_epochs": bad_epochs, "history": history,
                   "seconds": previous_seconds + (time.time() - started),
                   "config": {"settings": settings, "tomogram_names": training["tomogram_names"]}}
        write_state(checkpoint_path, KIND_2D, payload)
        mean_time = sum(epoch_times) / len(epoch_times)
        eta = mean_time * (config.epochs - epoch)
        log(f"epoch {epoch}/{config.epochs}  loss {train_loss:.4f}  val Dice {val_dice:.4f} (threshold "
            f"{val_threshold:.2f}){' *' if improved else '  '} best {best_dice:.4f} @ epoch {best_epoch}  "
            f"lr {learning_rate:.2g}  {seconds:.1f} s  ETA {format_duration(eta)}")
        if config.patience > 0 and bad_epochs >= config.patience and epoch < config.epochs:
            stopped_early = True
            log(f"stopping early: no validation improvement for {config.patience} epochs")

    if not out.is_file():
        raise ParameterError("training produced no model (no epoch finished)")
    best_network, _ = load_model(out, kind=KIND_2D)
    total_seconds = previous_seconds + (time.time() - started)
    training.update(best_epoch=best_epoch, best_val_dice=best_dice, epochs_run=epoch, stopped_early=bool(stopped_early),
                    seconds=round(total_seconds, 1), remap=format_remap(parse_remap(config.remap)), **{COMPLETE: True})
    info = _model_info(config, voxel_size, history, training, best_threshold)
    save_model(out, best_network, info)
    log(f"wrote {out}: best validation Dice {best_dice:.4f} at epoch {best_epoch} of {epoch}, mask threshold "
        f"{info.postprocess['threshold']:g}{' (calibrated on validation)' if config.threshold is None else ''} "
        f"({format_duration(total_seconds)})")
    return {"model": str(out), "checkpoint": str(checkpoint_path), "epochs_run": epoch, "best_epoch": best_epoch,
            "best_val_dice": best_dice, "threshold": info.postprocess["threshold"],
            "stopped_early": bool(stopped_early), "seconds": total_seconds,
            "history": history, "voxel_size": voxel_size}


__all__ = ["Train2DConfig", "train_2d"]
