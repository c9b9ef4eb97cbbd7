"""Random training tiles of a 2D training, each with its own random flips and 90° rotation.

Each epoch draws its tiles at random slices and positions; slices smaller than a tile are reflect-padded
and the padding carries no loss (DeePiCt used one transform per batch, and none for production models).
"""

from __future__ import annotations

import numpy as np

from deepict.train.data2d import TrainingSlices


def crop_or_pad(length: int, tile: int, rng) -> tuple[int, int, int]:
    """(start in the slice, pad before, pad after) for one random tile along an axis."""
    if length >= tile:
        return int(rng.integers(0, length - tile + 1)), 0, 0
    before = int(rng.integers(0, tile - length + 1))
    return 0, before, tile - length - before


def sample_tiles(train: list[TrainingSlices], count: int, tile: int, augment: bool, rng):
    """``count`` random (image, mask, weight) tiles; the weights are ``None`` when no tile was padded."""
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
        (y0, yb, ya), (x0, xb, xa) = (crop_or_pad(image.shape[0], tile, rng),
                                      crop_or_pad(image.shape[1], tile, rng))
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
