"""``deepict train3d --equalize-to``: training tomograms equalized on the fly, the reference stored in the model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from tiny_world import TINY_TRAINING, VOXEL, run

from deepict.io import read_volume, write_volume
from deepict.nn.model_files import read_model_info
from deepict.spectrum import RadialSpectrum, mean_spectrum, radial_spectrum
from deepict.synthetic import PhantomConfig, make_phantom, write_phantom
from deepict.train.data3d import equalize_training_tomograms
from deepict.train.train3d import TrainingTomogram

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def two_microscopes(tmp_path_factory):
    """One phantom as it is and a second one blurred (another microscope's transfer), with their picks."""
    folder = tmp_path_factory.mktemp("microscopes")
    files = []
    for seed, sigma in ((4, 0.0), (5, 1.5)):
        phantom = make_phantom(PhantomConfig(shape_zyx=(32, 48, 48), seed=seed, n_ribosomes=6, n_fas=1,
                                             n_distractors=1, n_vesicles=0, n_sheets=0))
        paths = write_phantom(phantom, folder, f"tomo{seed}")
        if sigma:
            write_volume(paths["tomogram"], ndimage.gaussian_filter(phantom.tomogram, sigma), VOXEL)
        files.append(paths)
    return folder, files


def shape_of(spectrum: RadialSpectrum, frequencies) -> np.ndarray:
    values = spectrum.at(frequencies)
    return values / values.mean()


def test_mean_spectrum_averages_shapes_not_scales():
    frequency = np.linspace(0.001, 0.037, 20)
    a = RadialSpectrum(frequency, np.linspace(2, 1, 20), VOXEL)
    b = RadialSpectrum(frequency, 1000 * np.linspace(1, 2, 20), VOXEL)  # another scale entirely
    mean = mean_spectrum([a, b], "test")
    np.testing.assert_allclose(mean.amplitude, np.full(20, 1.0))  # two opposite slopes cancel
    assert mean.metadata["source"] == "test" and mean.voxel_size == VOXEL


def test_training_tomograms_are_equalized_to_their_mean_spectrum(two_microscopes):
    _, files = two_microscopes
    tomograms = [TrainingTomogram(str(f["tomogram"]), read_volume(f["tomogram"]).data.astype(np.float32), None,
                                  None, VOXEL) for f in files]
    before = [radial_spectrum(t.data, VOXEL) for t in tomograms]
    lines = []
    record = equalize_training_tomograms(tomograms, "auto", None, 0.1, log=lines.append)
    after = [radial_spectrum(t.data, VOXEL) for t in tomograms]
    band = before[0].frequency[2:-4]
    gap_before = np.abs(shape_of(before[0], band) - shape_of(before[1], band)).max()
    gap_after = np.abs(shape_of(after[0], band) - shape_of(after[1], band)).max()
    assert gap_after < 0.25 * gap_before  # the blurred tomogram now looks like the sharp one
    assert record["source"] == "mean spectrum of the 2 training tomograms"
    assert any("equalizing the training tomograms" in line for line in lines)


def test_train3d_equalize_to_auto_stores_the_reference(two_microscopes, capsys):
    folder, files = two_microscopes
    model = folder / "equalized.pt"
    code, out, _ = run(capsys, "train3d", "--tomograms", *[f["tomogram"] for f in files],
                       "--coords", *[f["ribosome"] for f in files], "--equalize-to", "auto",
                       "--spectrum-lowpass-angstrom", "40", "--out", model, *TINY_TRAINING)
    assert code == 0, out
    spectrum = read_model_info(model).spectrum
    assert spectrum["source"] == "mean spectrum of the 2 training tomograms"
    assert spectrum["lowpass_angstrom"] == 40.0 and spectrum["voxel_size"] == pytest.approx(VOXEL)
    # 'deepict pick' equalizes a new tomogram to it (--equalize auto, the default).
    picks = folder / "picks.csv"
    code, out, err = run(capsys, "pick", "--model", model, "--tomogram", files[1]["tomogram"], "--out", picks,
                         "--window", "32", "--device", "cpu")
    assert code == 0 and picks.is_file()
    assert "equaliz" in out + err


def test_train3d_equalizes_to_the_mean_spectrum_by_default(two_microscopes, capsys):
    folder, files = two_microscopes
    model = folder / "default.pt"
    code, out, _ = run(capsys, "train3d", "--tomograms", *[f["tomogram"] for f in files],
                       "--coords", *[f["ribosome"] for f in files], "--out", model, *TINY_TRAINING)
    assert code == 0, out
    assert read_model_info(model).spectrum["source"] == "mean spectrum of the 2 training tomograms"


@pytest.mark.parametrize("extra, words", [
    (["--equalize-to", "other_reference.mrc", "--spectrum-reference", "ref.tsv"], "not both"),
    (["--equalize-to", "missing_reference.mrc"], "missing_reference.mrc"),
])
def test_train3d_equalize_to_bad_input_is_refused(two_microscopes, capsys, extra, words):
    folder, files = two_microscopes
    out = folder / "refused.pt"
    code, _, err = run(capsys, "train3d", "--tomograms", files[0]["tomogram"], "--coords", files[0]["ribosome"],
                       "--out", out, *TINY_TRAINING, *extra)
    assert code == 2 and words in err and "Traceback" not in err
    assert not out.exists()


def test_picking_a_tomogram_unlike_the_training_data_warns(two_microscopes, capsys):
    folder, (sharp, blurred) = two_microscopes
    model = folder / "sharp_only.pt"
    assert run(capsys, "train3d", "--tomograms", sharp["tomogram"], "--coords", sharp["ribosome"], "--out", model,
               "--equalize-to", "none", *TINY_TRAINING)[0] == 0
    assert read_model_info(model).spectrum is None
    assert read_model_info(model).training_spectrum["voxel_size"] == pytest.approx(VOXEL)
    warnings = {}
    for name, files in (("sharp", sharp), ("blurred", blurred)):
        code, out, err = run(capsys, "pick", "--model", model, "--tomogram", files["tomogram"],
                             "--out", folder / f"{name}.csv", "--window", "32", "--device", "cpu")
        assert code == 0
        warnings[name] = [line for line in (out + err).splitlines() if "unlike the training data" in line]
    assert warnings["sharp"] == []
    assert len(warnings["blurred"]) == 1 and "--equalize-to auto" in warnings["blurred"][0]
