"""``deepict train2d --equalize-to``: 2D training tomograms equalized on the fly, segment2d equalizing to the model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from deepict.cli.main import main
from deepict.io import read_volume, write_volume
from deepict.nn.model_files import read_model_info

VOXEL = 13.48
SHAPE = (24, 48, 48)
TINY_2D = ["--epochs", "1", "--tiles-per-epoch", "8", "--tile-size", "32", "--batch-size", "4", "--depth", "2",
           "--initial-features", "4", "--crop", "4", "--device", "cpu", "--threads", "1"]


def compartment(seed: int, blur: float):
    """A bright ellipsoid in noise (and its mask), blurred like data from another microscope."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    mask = (((z - 12) / 8) ** 2 + ((y - 24) / 15) ** 2 + ((x - 24) / 15) ** 2 < 1).astype(np.int8)
    tomogram = np.where(mask, 1.0, -1.0) + rng.normal(0, 1.0, SHAPE)
    return gaussian_filter(tomogram, blur).astype(np.float32) if blur else tomogram.astype(np.float32), mask


@pytest.fixture(scope="module")
def two_microscopes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("equalize2d")
    files = []
    for index, blur in enumerate((0, 1.5)):
        tomogram, mask = compartment(index, blur)
        files.append((folder / f"t{index}.mrc", folder / f"t{index}_cytosol.mrc"))
        write_volume(files[-1][0], tomogram, VOXEL)
        write_volume(files[-1][1], mask, VOXEL)
    return folder, files


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_train2d_equalize_to_auto_and_segment2d_equalizes(two_microscopes, capsys):
    folder, files = two_microscopes
    model = folder / "cytosol_eq.pt"
    code, out, err = run(capsys, "train2d", "--tomograms", *[t for t, _ in files], "--masks", *[m for _, m in files],
                         "--equalize-to", "auto", "--spectrum-lowpass-angstrom", "40", "--out", model, *TINY_2D)
    assert code == 0, out + err
    assert "equalizing the training tomograms to the mean spectrum of the 2 training tomograms" in out
    spectrum = read_model_info(model).spectrum
    assert spectrum["source"] == "mean spectrum of the 2 training tomograms" and spectrum["lowpass_angstrom"] == 40
    mask = folder / "t1_segmented.mrc"
    code, out, err = run(capsys, "segment2d", "--model", model, "--tomogram", files[1][0], "--out", mask,
                         "--device", "cpu")
    assert code == 0, out + err
    assert "to the model's reference spectrum (low-pass 40 Å)" in out + err
    assert read_volume(mask).data.shape == SHAPE
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".deepict")) == []  # scratch removed
    # --equalize off segments the tomogram as it is
    code, out, err = run(capsys, "segment2d", "--model", model, "--tomogram", files[1][0], "--out",
                         folder / "t1_raw.mrc", "--device", "cpu", "--equalize", "off")
    assert code == 0 and "reference spectrum" not in out + err


def test_train2d_without_equalization_and_bad_spectrum_options(two_microscopes, capsys):
    folder, files = two_microscopes
    model = folder / "cytosol_raw.pt"
    tomograms = ["--tomograms", files[0][0], "--masks", files[0][1]]
    assert run(capsys, "train2d", *tomograms, "--out", model, *TINY_2D)[0] == 0
    assert read_model_info(model).spectrum is None  # 2D training equalizes only when asked
    code, _, err = run(capsys, "segment2d", "--model", model, "--tomogram", files[1][0], "--out",
                       folder / "refused.mrc", "--device", "cpu", "--equalize", "on")
    assert code == 2 and "stores no reference spectrum" in err and "Traceback" not in err
    assert not (folder / "refused.mrc").exists()
    code, _, err = run(capsys, "train2d", *tomograms, "--out", folder / "lowpass.pt", "--spectrum-lowpass-angstrom",
                       "40", *TINY_2D)
    assert code == 2 and "needs --equalize-to" in err and not (folder / "lowpass.pt").exists()
    code, _, err = run(capsys, "train2d", *tomograms, "--out", folder / "missing.pt", "--equalize-to",
                       folder / "missing_reference.mrc", *TINY_2D)
    assert code == 2 and "missing_reference.mrc" in err and not (folder / "missing.pt").exists()
