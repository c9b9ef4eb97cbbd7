"""2D segmentation batches the tiles of several slices through one channels-last inference copy of the
network: the probabilities are those of predicting every tile alone, and the caller's network is untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepict.infer.slices2d import predict_array, segment_tomogram
from deepict.infer.tiling import box_starts, pad_for_tiles
from deepict.io import read_volume, write_volume
from deepict.nn.model_files import KIND_2D, ModelInfo, build_network, save_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TILE, CROP = 32, 6


def _network() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(ModelInfo(kind=KIND_2D, classes=["cytosol"], voxel_size=10.0, patch_size=TILE,
                                   overlap=CROP, architecture={"depth": 3, "initial_features": 4}))


def _one_tile_at_a_time(network, stack: np.ndarray) -> np.ndarray:
    """The reference: every tile alone through the plain (contiguous) network, cores averaged."""
    core, out = TILE - 2 * CROP, np.zeros(stack.shape, np.float32)
    ys, xs = box_starts(stack.shape[1], TILE, CROP), box_starts(stack.shape[2], TILE, CROP)
    for z, image in enumerate(stack):
        padded, count = pad_for_tiles(image, TILE, CROP), np.zeros(image.shape, np.float32)
        for y0 in ys:
            for x0 in xs:
                with torch.no_grad():
                    tile = torch.from_numpy(np.ascontiguousarray(padded[y0:y0 + TILE, x0:x0 + TILE]))[None, None]
                    prob = torch.sigmoid(network.eval()(tile))[0, 0, CROP:CROP + core, CROP:CROP + core].numpy()
                target = out[z, y0:y0 + core, x0:x0 + core]
                target += prob[:target.shape[0], :target.shape[1]]
                count[y0:y0 + core, x0:x0 + core] += 1
        out[z] /= count
    return out


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_batched_tiles_give_the_probabilities_of_single_tiles(batch_size):
    network = _network()
    stack = np.random.default_rng(0).normal(size=(5, 45, 50)).astype(np.float32)
    expected = _one_tile_at_a_time(network, stack)
    network.train()
    got = predict_array(network, stack, TILE, CROP, batch_size=batch_size, device="cpu")
    assert np.abs(got - expected).max() < 1e-5
    # The caller's network (e.g. one in training) keeps its mode and its layout.
    assert network.training and network.out_conv.weight.is_contiguous()


def test_segmenting_a_tiny_tomogram_does_not_depend_on_the_batch(tmp_path):
    network = _network()
    info = ModelInfo(kind=KIND_2D, classes=["cytosol"], voxel_size=10.0, patch_size=TILE, overlap=CROP,
                     architecture={"depth": 3, "initial_features": 4})
    save_model(tmp_path / "m.pt", network, info)
    write_volume(tmp_path / "t.mrc", np.random.default_rng(1).normal(size=(9, 40, 44)).astype(np.float32), 10.0)
    maps = []
    for batch_size in (1, 6):
        segment_tomogram(tmp_path / "m.pt", tmp_path / "t.mrc", tmp_path / f"mask{batch_size}.mrc",
                         probability_map=tmp_path / f"p{batch_size}.mrc", batch_size=batch_size, tile_size=TILE,
                         device="cpu", threshold=0.5, sigma=1.0, log=None)
        maps.append(read_volume(tmp_path / f"p{batch_size}.mrc").data.copy())
    assert np.abs(maps[0] - maps[1]).max() < 1e-5
    assert np.array_equal(read_volume(tmp_path / "mask1.mrc").data, read_volume(tmp_path / "mask6.mrc").data)
