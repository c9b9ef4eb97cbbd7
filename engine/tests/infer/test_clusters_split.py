"""Tests of splitting clusters of touching particles (deepict.infer.splitting) and of the cluster boxes it uses."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from deepict.infer.clusters import ClusterParameters, find_clusters
from deepict.infer.splitting import split_touching

SHAPE = (40, 48, 72)
RADIUS = 8


def spheres(centres_zyx, radius=RADIUS, value=0.9, shape=SHAPE) -> np.ndarray:
    z, y, x = np.indices(shape)
    probability = np.zeros(shape, np.float32)
    for cz, cy, cx in centres_zyx:
        probability[(z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= radius ** 2] = value
    return probability


def picks(probability, params=None, radius=RADIUS, context=None, slab=64):
    params = params or ClusterParameters(threshold=0.5, min_size=100)
    clusters = find_clusters(probability, params, context, slab=slab)
    return clusters, split_touching(probability, clusters, params, radius, context)


@pytest.mark.parametrize("distance", [16, 13])
def test_two_touching_spheres_get_a_centre_each_and_an_isolated_sphere_stays_whole(distance):
    touching = [(20, 24, 14), (20, 24, 14 + distance)]
    probability = spheres(touching + [(20, 24, 60)])
    clusters, split = picks(probability, slab=7)  # the touching pair crosses slabs
    assert len(clusters) == 2  # the pair is one cluster ...
    assert len(split) == 3  # ... split in two; the isolated sphere is not split
    order = np.argsort(split.xyz[:, 0])
    found_zyx = split.xyz[order][:, ::-1]
    expected = np.array(touching + [(20, 24, 60)], float)
    # Each half of the pair loses the voxels of the other's overlap: within a voxel of its centre.
    np.testing.assert_allclose(found_zyx, expected, atol=1.0)
    np.testing.assert_allclose(found_zyx[2], expected[2], atol=1e-9)  # the isolated sphere is untouched
    assert split.size[order][:2].sum() == clusters.size.max()  # every voxel of the pair goes to one part
    np.testing.assert_allclose(split.mean_probability, 0.9, atol=1e-6)


def test_an_elongated_blob_or_a_small_cluster_is_not_split():
    capsule = np.zeros(SHAPE, np.float32)
    for cx in range(14, 30):  # a sphere swept over two radii: a ridge, not two peaks
        capsule = np.maximum(capsule, spheres([(20, 24, cx)]))
    clusters, split = picks(capsule)
    assert clusters.size[0] > 1.5 * 4 / 3 * np.pi * RADIUS ** 3  # large enough to be tried
    assert len(split) == 1 and np.allclose(split.xyz, clusters.xyz)
    # Touching spheres smaller than the expected particle stay whole: they are not two particles of this size.
    small = spheres([(20, 24, 20), (20, 24, 28)], radius=4)
    clusters, split = picks(small, params=ClusterParameters(threshold=0.5, min_size=10))
    assert len(clusters) == len(split) == 1


def test_parts_below_the_minimum_size_are_dropped_and_a_cluster_left_with_one_part_stays_whole():
    probability = np.maximum(spheres([(20, 24, 16), (20, 24, 32)]), spheres([(20, 24, 45)], radius=6))
    whole = find_clusters(probability, ClusterParameters(threshold=0.5, min_size=100))
    assert len(whole) == 1
    _, split = picks(probability, params=ClusterParameters(threshold=0.5, min_size=100))
    assert len(split) == 3  # two spheres and the smaller lobe (radius 6)
    _, split = picks(probability, params=ClusterParameters(threshold=0.5, min_size=1000))
    assert len(split) == 2  # the lobe (about 920 voxels) is dropped
    _, split = picks(probability, params=ClusterParameters(threshold=0.5, min_size=2500))
    assert len(split) == 1 and np.allclose(split.xyz, whole.xyz)  # no two parts left: kept whole


def test_the_border_and_the_context_are_applied_as_in_the_clustering():
    probability = spheres([(20, 24, 14), (20, 24, 30)])
    context = np.ones(SHAPE, np.int8)
    context[:, :, :22] = 0  # the first sphere lies outside the context but for a sliver
    params = ClusterParameters(threshold=0.5, min_size=100, context_mode="intersection")
    clusters, split = picks(probability, params=params, context=context)
    assert len(clusters) == len(split) == 1
    assert split.xyz[0, 0] > 22


def test_cluster_boxes_are_the_boxes_of_whole_volume_labelling():
    rng = np.random.default_rng(3)
    probability = ndimage.gaussian_filter(rng.normal(size=(23, 30, 28)), 1.3)
    probability = ((probability - probability.min()) / np.ptp(probability)).astype(np.float32) - 0.08
    labels, n = ndimage.label(probability > 0.5)
    expected = np.array([[[s.start for s in box], [s.stop for s in box]] for box in ndimage.find_objects(labels)])
    for slab in (1, 4, 64):
        clusters = find_clusters(probability, ClusterParameters(threshold=0.5), slab=slab)
        assert len(clusters) == n > 5
        np.testing.assert_array_equal(clusters.box_zyx, expected)


def test_deepict_pick_splits_touching_particles_when_asked(tmp_path, monkeypatch, capsys):
    from deepict.cli.main import main
    from deepict.infer import picking
    from deepict.io import read_coordinates, write_volume
    from deepict.nn.model_files import KIND_3D, ModelInfo, build_network, save_model
    info = ModelInfo(kind=KIND_3D, classes=["ribosome"], voxel_size=10.0, patch_size=16, overlap=4,
                     architecture={"depth": 1, "initial_features": 2, "out_channels": 1, "batch_norm": False},
                     label_kind="spheres", sphere_radius={"ribosome": float(RADIUS)},
                     postprocess={"threshold": 0.5, "min_size": 100, "max_size": None})
    model, tomogram = tmp_path / "model.pt", tmp_path / "tomo.mrc"
    save_model(model, build_network(info), info)
    write_volume(tomogram, np.zeros(SHAPE, np.float32), 10.0)
    pair = spheres([(20, 24, 14), (20, 24, 30)])

    def predict_to_file(model_path, tomogram_path, out_path, class_name, options, log=print):
        write_volume(out_path, pair, 10.0)  # the "network" sees two touching particles
        return info, 10.0

    monkeypatch.setattr(picking, "predict_to_file", predict_to_file)
    for flags, expected in ((["--split-touching"], 2), ([], 1)):
        out = tmp_path / f"picks{len(flags)}.csv"
        assert main(["pick", "--model", str(model), "--tomogram", str(tomogram), "--out", str(out), *flags]) == 0
        assert len(read_coordinates(out)) == expected, flags
    assert "2 ribosome particle(s) picked" in capsys.readouterr().out  # split; then 1 kept whole (the default)
