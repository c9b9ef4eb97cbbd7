"""Tests of slab-wise clustering and context filtering (deepict.infer.clusters)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from deepict.errors import ParameterError
from deepict.io import read_volume, volume_writer, write_volume
from deepict.infer.clusters import ClusterParameters, find_clusters, remove_duplicates


def random_map(shape=(23, 30, 28), seed=0, sigma=1.3, level=0.58) -> np.ndarray:
    """A probability-like map whose thresholded blobs have all sorts of shapes and cross slabs."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma)
    field = (field - field.min()) / (field.max() - field.min())
    return np.clip(field + (0.5 - level), 0, 1).astype(np.float32)


def reference(probability, threshold=0.5, connectivity=1, binary=None):
    """Clusters of the whole volume with scipy: labels, sizes, centroids (x, y, z), mean probabilities."""
    binary = probability > threshold if binary is None else binary
    labels, n = ndimage.label(binary, structure=ndimage.generate_binary_structure(3, connectivity))
    index = np.arange(1, n + 1)
    sizes = np.asarray(ndimage.sum_labels(np.ones_like(labels), labels, index)).astype(int)
    centroids = np.array(ndimage.center_of_mass(np.ones_like(labels), labels, index)).reshape(-1, 3)[:, ::-1]
    means = np.asarray(ndimage.mean(probability, labels, index))
    return labels, sizes, centroids, means


def sorted_rows(xyz, sizes, means):
    rows = np.column_stack([xyz, sizes, means]) if len(sizes) else np.zeros((0, 5))
    return rows[np.lexsort(rows[:, ::-1].T)]


@pytest.mark.parametrize("connectivity", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_slab_boundaries_are_merged_like_whole_volume_labelling(connectivity, seed):
    probability = random_map(seed=seed)
    _, sizes, centroids, means = reference(probability, connectivity=connectivity)
    assert len(sizes) > 5 and sizes.max() > 20  # the test needs clusters spanning several slabs
    params = ClusterParameters(threshold=0.5, min_size=1, connectivity=connectivity)
    for slab in (4, 1, 7, 64):
        clusters = find_clusters(probability, params, slab=slab)
        assert len(clusters) == len(sizes), f"slab {slab}"
        # Same clusters in the same (raster-scan) order as whole-volume labelling.
        np.testing.assert_array_equal(clusters.size, sizes)
        np.testing.assert_allclose(clusters.xyz, centroids, atol=1e-9)
        np.testing.assert_allclose(clusters.mean_probability, means, atol=1e-6)


def test_connectivity_changes_the_clusters():
    probability = np.zeros((4, 4, 4), np.float32)
    probability[0, 0, 0] = probability[1, 1, 0] = probability[2, 2, 1] = 0.9  # edge, then corner contact
    counts = [len(find_clusters(probability, ClusterParameters(connectivity=c), slab=1)) for c in (1, 2, 3)]
    assert counts == [3, 2, 1]


def test_size_filter_is_inclusive():
    probability = random_map(seed=3)
    _, sizes, centroids, _ = reference(probability)
    low, high = int(np.percentile(sizes, 30)), int(np.percentile(sizes, 80))
    clusters = find_clusters(probability, ClusterParameters(min_size=low, max_size=high), slab=4)
    expected = (sizes >= low) & (sizes <= high)
    np.testing.assert_array_equal(clusters.size, sizes[expected])
    np.testing.assert_allclose(clusters.xyz, centroids[expected])
    assert len(find_clusters(probability, ClusterParameters(min_size=int(sizes.max()) + 1), slab=4)) == 0


def test_border_exclusion_per_axis():
    probability = random_map(seed=4)
    bx, by, bz = 2, 3, 1
    cleared = probability.copy()
    cleared[:bz] = cleared[-bz:] = 0
    cleared[:, :by] = cleared[:, -by:] = 0
    cleared[:, :, :bx] = cleared[:, :, -bx:] = 0
    _, sizes, centroids, _ = reference(cleared)
    clusters = find_clusters(probability, ClusterParameters(border_xyz=(bx, by, bz)), slab=4)
    np.testing.assert_array_equal(clusters.size, sizes)
    np.testing.assert_allclose(clusters.xyz, centroids)
    # A border as wide as half the volume leaves nothing.
    assert len(find_clusters(probability, ClusterParameters(border_xyz=(14, 15, 12)), slab=4)) == 0


@pytest.fixture(scope="module")
def map_and_mask():
    probability = random_map(seed=5)
    mask = np.zeros(probability.shape, np.int8)
    mask[:, :, :11] = 1  # a slab of "cytosol" at low x
    mask[5:9, 20:25, 20:24] = 1  # and a small island
    return probability, mask


def test_intersection_clusters_only_voxels_in_the_mask(map_and_mask):
    probability, mask = map_and_mask
    _, sizes, centroids, means = reference(probability, binary=(probability > 0.5) & (mask != 0))
    clusters = find_clusters(probability, ClusterParameters(context_mode="intersection"), context=mask, slab=4)
    np.testing.assert_array_equal(clusters.size, sizes)
    np.testing.assert_allclose(clusters.xyz, centroids)
    np.testing.assert_allclose(clusters.mean_probability, means, atol=1e-6)
    assert (clusters.xyz[:, 0] < 11).sum() > 0


@pytest.mark.parametrize("distance", [0.0, 1.0, 2.5])
def test_contact_keeps_whole_clusters_near_the_mask(map_and_mask, distance):
    probability, mask = map_and_mask
    labels, sizes, centroids, _ = reference(probability)
    near = ndimage.distance_transform_edt(mask == 0) <= distance
    touching = np.zeros(len(sizes) + 1, bool)
    touching[np.unique(labels[near & (labels > 0)])] = True
    expected = touching[1:]
    assert 0 < expected.sum() < len(sizes)
    clusters = find_clusters(probability, ClusterParameters(context_mode="contact", context_distance=distance),
                             context=mask, slab=4)
    np.testing.assert_array_equal(clusters.size, sizes[expected])  # whole clusters, not cut at the mask
    np.testing.assert_allclose(clusters.xyz, centroids[expected])


def test_contact_distance_widens_the_selection(map_and_mask):
    probability, mask = map_and_mask
    counts = [len(find_clusters(probability, ClusterParameters(context_mode="contact", context_distance=d),
                                context=mask, slab=4)) for d in (0.0, 2.0, 6.0)]
    assert counts[0] <= counts[1] <= counts[2] and counts[0] < counts[2]


@pytest.mark.parametrize("distance", [0.0, 2.0, 5.0])
def test_colocalization_keeps_clusters_with_centroid_near_the_mask(map_and_mask, distance):
    probability, mask = map_and_mask
    _, sizes, centroids, _ = reference(probability)
    mask_points = np.argwhere(mask != 0)[:, ::-1]  # x, y, z
    nearest = np.array([np.min(np.linalg.norm(mask_points - c, axis=1)) for c in centroids])
    expected = nearest <= max(distance, 0.5 * np.sqrt(3))  # a centroid inside a mask voxel counts as 0
    assert 0 < expected.sum() < len(sizes)
    clusters = find_clusters(probability, ClusterParameters(context_mode="colocalization",
                                                            context_distance=distance), context=mask, slab=4)
    np.testing.assert_array_equal(clusters.size, sizes[expected])
    np.testing.assert_allclose(clusters.xyz, centroids[expected])


def test_colocalization_simple_case():
    probability = np.zeros((10, 20, 30), np.float32)
    probability[4:7, 4:7, 4:7] = 0.9   # centroid (5, 5, 5)
    probability[4:7, 4:7, 20:23] = 0.8  # centroid (x=21, y=5, z=5)
    mask = np.zeros(probability.shape, np.int8)
    mask[:, :, 25:] = 1  # 4 voxels from the second centroid
    params = lambda d: ClusterParameters(context_mode="colocalization", context_distance=d)  # noqa: E731
    assert len(find_clusters(probability, params(3.5), context=mask)) == 0
    kept = find_clusters(probability, params(4.0), context=mask)
    assert len(kept) == 1 and np.allclose(kept.xyz, [[21, 5, 5]]) and kept.size[0] == 27
    assert kept.mean_probability[0] == pytest.approx(0.8)


def test_empty_map_gives_an_empty_result(tmp_path):
    probability = np.zeros((9, 10, 11), np.float32)
    mask = np.ones(probability.shape, np.int8)
    for mode in ("intersection", "contact", "colocalization"):
        clusters = find_clusters(probability, ClusterParameters(context_mode=mode, context_distance=1), context=mask)
        assert len(clusters) == 0 and clusters.xyz.shape == (0, 3)
        assert clusters.size.shape == (0,) and clusters.mean_probability.shape == (0,)
    # An empty intersection (the original crashed here) is an empty result too.
    full = np.full(probability.shape, 0.9, np.float32)
    assert len(find_clusters(full, ClusterParameters(), context=np.zeros_like(mask))) == 0
    with volume_writer(tmp_path / "kept.mrc", probability.shape, np.int8, 13.48) as write:
        assert len(find_clusters(probability, ClusterParameters(), keep_mask_writer=write, slab=4)) == 0
    assert not read_volume(tmp_path / "kept.mrc").data.any()


@pytest.mark.parametrize("connectivity", [1, 3])
def test_keep_mask_writer_writes_exactly_the_kept_clusters(tmp_path, connectivity):
    probability = random_map(seed=6)
    labels, sizes, _, _ = reference(probability, connectivity=connectivity)
    low = int(np.median(sizes))
    params = ClusterParameters(min_size=low, connectivity=connectivity)
    # In memory ...
    written = np.full(probability.shape, -1, np.int8)

    def write(z0, slab):
        assert (written[z0:z0 + len(slab)] == -1).all(), "each slice once"
        written[z0:z0 + len(slab)] = slab

    clusters = find_clusters(probability, params, slab=4, keep_mask_writer=write)
    expected = np.isin(labels, 1 + np.flatnonzero(sizes >= low))
    np.testing.assert_array_equal(written, expected.astype(np.int8))
    assert int(clusters.size.sum()) == int(expected.sum())
    # ... and streamed to an MRC file from a memory-mapped map.
    write_volume(tmp_path / "map.mrc", probability, 13.48)
    mapped = read_volume(tmp_path / "map.mrc").data
    with volume_writer(tmp_path / "kept.mrc", probability.shape, np.int8, 13.48) as write_file:
        find_clusters(mapped, params, slab=5, keep_mask_writer=write_file)
    kept = read_volume(tmp_path / "kept.mrc")
    np.testing.assert_array_equal(kept.data, expected.astype(np.int8))
    assert kept.voxel_size == pytest.approx(13.48)


def test_parameter_validation():
    probability = np.zeros((2, 2, 2), np.float32)
    for bad in (dict(threshold=1.0), dict(threshold=-0.1), dict(connectivity=4), dict(min_size=10, max_size=5),
                dict(context_mode="touch"), dict(context_distance=-1)):
        with pytest.raises(ParameterError):
            find_clusters(probability, ClusterParameters(**bad))
    with pytest.raises(ParameterError, match="context mask"):
        find_clusters(probability, ClusterParameters(), context=np.zeros((2, 2, 3), np.int8))


# --------------------------------------------------------------------------------------------
# Duplicates
# --------------------------------------------------------------------------------------------

def test_remove_duplicates_keeps_the_higher_score():
    xyz = np.array([[0, 0, 0], [1, 0, 0], [10, 0, 0]], float)
    assert remove_duplicates(xyz, np.array([0.2, 0.9, 0.1]), 2.0).tolist() == [1, 2]
    assert remove_duplicates(xyz, np.array([0.9, 0.2, 0.1]), 2.0).tolist() == [0, 2]


def test_remove_duplicates_chain_and_limits():
    xyz = np.array([[0, 0, 0], [3, 0, 0], [6, 0, 0]], float)
    # The middle one wins and removes both neighbours; if an end wins, the other end survives.
    assert remove_duplicates(xyz, np.array([0.1, 0.9, 0.2]), 4.0).tolist() == [1]
    assert remove_duplicates(xyz, np.array([0.9, 0.5, 0.2]), 4.0).tolist() == [0, 2]
    # Exactly min_distance apart is allowed; 0 disables the filter; tiny inputs pass through.
    assert remove_duplicates(xyz, np.ones(3), 3.0).tolist() == [0, 1, 2]
    assert remove_duplicates(xyz, np.ones(3), 0.0).tolist() == [0, 1, 2]
    assert remove_duplicates(np.zeros((0, 3)), np.zeros(0), 5.0).tolist() == []
    assert remove_duplicates(xyz[:1], np.ones(1), 5.0).tolist() == [0]


def test_remove_duplicates_matches_brute_force():
    rng = np.random.default_rng(7)
    xyz = rng.uniform(0, 30, size=(200, 3))
    scores = rng.random(200)
    kept = remove_duplicates(xyz, scores, 4.0)
    chosen = []
    for index in np.argsort(-scores):
        if all(np.linalg.norm(xyz[index] - xyz[j]) >= 4.0 for j in chosen):
            chosen.append(index)
    assert kept.tolist() == sorted(chosen)
