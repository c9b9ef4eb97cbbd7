"""Tests of the procedural phantoms (deepict.synthetic): tiny volumes, fast."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from deepict import synthetic
from deepict.io import read_coordinates, read_volume
from deepict.synthetic import PhantomConfig, make_dataset, make_phantom, write_phantom
from deepict.synthetic import cells

SMALL = dict(shape_zyx=(48, 64, 64), n_ribosomes=4, n_fas=2, n_distractors=3, n_vesicles=1, n_sheets=0)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(PhantomConfig(seed=3, **SMALL))


@pytest.fixture(scope="module")
def clean_phantom():
    """Almost noise-free, no background fluctuation: particle shapes can be checked voxel by voxel."""
    return make_phantom(PhantomConfig(seed=5, snr=1000.0, background_fluctuation=0.0, crowding=0.0,
                                      n_organelles=0, **SMALL))


def test_shapes_types_and_normalisation(phantom):
    tomo = phantom.tomogram
    assert tomo.shape == (48, 64, 64) and tomo.dtype == np.float32
    assert np.isfinite(tomo).all()
    assert abs(float(tomo.mean())) < 1e-3 and abs(float(tomo.std()) - 1.0) < 1e-3
    assert phantom.voxel_size == pytest.approx(13.48)
    assert set(phantom.coords) == {"ribosome", "fas"}
    for name in ("membrane", "cytosol", "organelles"):
        mask = phantom.masks[name]
        assert mask.shape == tomo.shape and mask.dtype == np.int8
        assert set(np.unique(mask)) <= {0, 1}


def test_masks_are_consistent(phantom):
    m = {k: v.astype(bool) for k, v in phantom.masks.items()}
    assert m["cytosol"].any() and m["membrane"].any() and m["organelles"].any()
    assert not (m["cytosol"] & m["organelles"]).any()
    assert not (m["membrane"] & ~m["organelles"]).any()       # membranes belong to their compartment
    # Vacuum above and below the lamella: the first and last slices are mostly neither.
    assert m["cytosol"][0].mean() < 0.5 and m["cytosol"][-1].mean() < 0.5


def test_deterministic_with_seed(phantom):
    again = make_phantom(PhantomConfig(seed=3, **SMALL))
    np.testing.assert_array_equal(again.tomogram, phantom.tomogram)
    for cls in ("ribosome", "fas"):
        np.testing.assert_array_equal(again.coords[cls], phantom.coords[cls])
        np.testing.assert_array_equal(again.angles[cls], phantom.angles[cls])
    for name in phantom.masks:
        np.testing.assert_array_equal(again.masks[name], phantom.masks[name])
    other = make_phantom(PhantomConfig(seed=4, **SMALL))
    assert not np.array_equal(other.tomogram, phantom.tomogram)


def test_requested_particles_are_placed(phantom):
    assert len(phantom.coords["ribosome"]) == 4
    assert len(phantom.coords["fas"]) == 2
    for cls in ("ribosome", "fas"):
        assert phantom.coords[cls].shape[1] == 3 and phantom.angles[cls].shape == phantom.coords[cls].shape


def test_coordinates_inside_volume_and_cytosol(phantom):
    shape_xyz = np.array(phantom.tomogram.shape[::-1])
    cytosol = phantom.masks["cytosol"]
    for cls, xyz in list(phantom.coords.items()) + list(phantom.distractors.items()):
        assert np.all(xyz >= 0) and np.all(xyz <= shape_xyz - 1), cls
        ix = np.round(xyz).astype(int)
        assert cytosol[ix[:, 2], ix[:, 1], ix[:, 0]].all(), cls


def test_particles_do_not_overlap(phantom):
    everything = np.concatenate([phantom.coords["ribosome"], phantom.coords["fas"]]
                                + list(phantom.distractors.values()))
    dist = np.sqrt(((everything[:, None] - everything[None]) ** 2).sum(-1))
    np.fill_diagonal(dist, np.inf)
    assert dist.min() >= 12.0
    big = np.concatenate([phantom.coords["ribosome"], phantom.coords["fas"]])
    dist = np.sqrt(((big[:, None] - big[None]) ** 2).sum(-1))
    np.fill_diagonal(dist, np.inf)
    assert dist.min() >= 18.0


def _values(volume, xyz):
    ix = np.round(xyz).astype(int)
    return volume[ix[:, 2], ix[:, 1], ix[:, 0]]


def test_ribosomes_are_dark(phantom, clean_phantom):
    # Clean phantom: every ribosome centre is darker than the mean (protein is dark).
    assert np.all(_values(clean_phantom.tomogram, clean_phantom.coords["ribosome"]) < -0.5)
    # Realistic noise: still darker on average after light smoothing.
    smooth = ndimage.gaussian_filter(phantom.tomogram, 1.5)
    cytosol = phantom.masks["cytosol"].astype(bool)
    assert _values(smooth, phantom.coords["ribosome"]).mean() < smooth[cytosol].mean() - 0.3


def _shell_mean(volume, centre_xyz, r_lo, r_hi):
    z, y, x = np.ogrid[:volume.shape[0], :volume.shape[1], :volume.shape[2]]
    r = np.sqrt((x - centre_xyz[0]) ** 2 + (y - centre_xyz[1]) ** 2 + (z - centre_xyz[2]) ** 2)
    return float(volume[(r >= r_lo) & (r < r_hi)].mean())


def test_fas_is_a_hollow_shell(clean_phantom):
    tomo = clean_phantom.tomogram
    assert len(clean_phantom.coords["fas"]) >= 1
    for centre in clean_phantom.coords["fas"]:
        inside = _shell_mean(tomo, centre, 0.0, 3.0)
        shell = _shell_mean(tomo, centre, 7.0, 9.5)
        assert shell < inside - 0.2          # dense (dark) shell around a lighter interior
    for centre in clean_phantom.coords["ribosome"]:
        assert _shell_mean(tomo, centre, 0.0, 3.0) < _shell_mean(tomo, centre, 7.0, 9.5)   # solid


def test_templates_differ():
    t = synthetic.particle_templates(10.0, 10.0)
    rib, fas = t["ribosome"], t["fas"]
    c = tuple(s // 2 for s in rib.shape)
    assert rib[c] > 0.8                       # solid
    assert fas[tuple(s // 2 for s in fas.shape)] < 0.3   # hollow
    assert cells._template_radius(rib) == pytest.approx(10.0, abs=1.5)


def test_missing_wedge_is_empty(phantom):
    spectrum = np.abs(np.fft.rfftn(phantom.tomogram)) ** 2
    measured = synthetic.missing_wedge_mask(phantom.tomogram.shape, 60.0).astype(bool)
    measured[0, 0, 0] = True
    assert spectrum[~measured].sum() < 1e-6 * spectrum[measured].sum()


def test_write_phantom_round_trip(phantom, tmp_path):
    paths = write_phantom(phantom, tmp_path / "out", "tomo")
    for key in ("tomogram", "ribosome", "fas", "membrane", "cytosol", "organelles", "distractors"):
        assert key in paths
    assert paths["tomogram"].endswith("tomo.mrc")
    assert paths["ribosome"].endswith("tomo_ribosome.csv") and paths["fas"].endswith("tomo_fas.csv")
    volume = read_volume(paths["tomogram"])
    assert volume.voxel_size == pytest.approx(13.48, abs=1e-3)
    np.testing.assert_array_equal(np.asarray(volume.data), phantom.tomogram)
    for cls in ("ribosome", "fas"):
        table = read_coordinates(paths[cls])
        assert table.voxel_size == pytest.approx(13.48)
        np.testing.assert_allclose(table.xyz, phantom.coords[cls], atol=1e-3)
        assert {"rot", "tilt", "psi"} <= set(table.columns)
    for name in ("membrane", "cytosol", "organelles"):
        mask = read_volume(paths[name])
        assert mask.voxel_size == pytest.approx(13.48, abs=1e-3)
        assert mask.data.dtype == np.int8
        np.testing.assert_array_equal(np.asarray(mask.data), phantom.masks[name])


def test_make_dataset(tmp_path):
    config = PhantomConfig(shape_zyx=(32, 48, 48), n_ribosomes=2, n_fas=1, n_distractors=1,
                           n_organelles=0, n_vesicles=0, n_sheets=1)
    written = make_dataset(tmp_path, 2, config, seed=7, prefix="demo")
    assert [w["name"] for w in written] == ["demo_000", "demo_001"]
    a, b = (np.asarray(read_volume(w["tomogram"]).data) for w in written)
    assert not np.array_equal(a, b)
    again = make_dataset(tmp_path / "again", 1, config, seed=7, prefix="demo")
    np.testing.assert_array_equal(np.asarray(read_volume(again[0]["tomogram"]).data), a)


def test_empty_and_invalid_configs(tmp_path):
    empty = make_phantom(PhantomConfig(shape_zyx=(24, 32, 32), n_ribosomes=0, n_fas=0, n_distractors=0,
                                       n_organelles=0, n_vesicles=0, n_sheets=0, crowding=0.0))
    assert empty.coords["ribosome"].shape == (0, 3) and empty.coords["fas"].shape == (0, 3)
    assert np.isfinite(empty.tomogram).all()
    paths = write_phantom(empty, tmp_path, "empty")
    assert len(read_coordinates(paths["ribosome"])) == 0
    assert len(read_coordinates(paths["distractors"])) == 0
    with pytest.raises(ValueError):
        PhantomConfig(shape_zyx=(4, 32, 32))
    with pytest.raises(ValueError):
        PhantomConfig(snr=0.0)
    with pytest.raises(ValueError):
        PhantomConfig(n_ribosomes=-1)
