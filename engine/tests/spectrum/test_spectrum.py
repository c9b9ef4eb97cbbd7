"""Tests of the radial spectrum and spectrum equalization engine and of its CLI.

All data are made on the fly; the test on the simulated development tomograms skips when the
shared data folder (``<repo>/../shared``) is absent.
"""

from __future__ import annotations

import math
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from deepict import spectrum as sp
from deepict.cli.main import main
from deepict.errors import InputFileError, ParameterError
from deepict.io import read_volume, write_volume
from tiny_world import SHARED

DEV = SHARED / "data" / "dev"
RAYLEIGH_MEAN = math.sqrt(math.pi) / 2  # mean |F| of unit-variance white noise, ortho FFT


def quiet(_message):
    pass


def filtered_noise(shape, voxel_size, amplitude_of_frequency, seed=0) -> np.ndarray:
    """White noise filtered by a radial amplitude given in PHYSICAL frequency (1/Å): isotropic data."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfftn(rng.standard_normal(shape))
    fz = np.fft.fftfreq(shape[0], voxel_size)[:, None, None]
    fy = np.fft.fftfreq(shape[1], voxel_size)[None, :, None]
    fx = np.fft.rfftfreq(shape[2], voxel_size)[None, None, :]
    spectrum *= amplitude_of_frequency(np.sqrt(fz ** 2 + fy ** 2 + fx ** 2))
    return np.fft.irfftn(spectrum, s=shape).astype(np.float32)


def lorentzian(f0):
    return lambda f: 1.0 / (1.0 + (f / f0) ** 2)


def band(spectrum: sp.RadialSpectrum, low, high) -> np.ndarray:
    return (spectrum.frequency >= low) & (spectrum.frequency <= high)


def original_profile(volume: np.ndarray) -> np.ndarray:
    """The original DeePiCt radial profile (DEEPICT.md §2.1), quirks included, for small test volumes."""
    v = volume.astype(np.float64)
    v = (v - v.min()) / (v.max() - v.min())
    amplitude = np.abs(np.fft.fftshift(np.fft.fftn(v)))
    centre = np.array(volume.shape) / 2.0
    grid = np.indices(volume.shape, dtype=np.float64)
    radius = np.sqrt(sum((grid[k] - centre[k]) ** 2 for k in range(3)))
    n_bins = max(volume.shape) // 2
    r_max = math.sqrt(float(np.sum(centre ** 2)))
    index = np.floor(n_bins * radius / r_max).astype(int)
    return np.array([amplitude[index == j + 1].mean() for j in range(n_bins)])


def write_original_tsv(path: Path, profile) -> None:
    lines = ["freq\tintensity"] + [f"{j}\t{a!r}" for j, a in enumerate(profile)]
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------
# radial_spectrum
# --------------------------------------------------------------------------------------------

def test_white_noise_spectrum_is_flat():
    rng = np.random.default_rng(1)
    data = rng.normal(5.0, 3.0, size=(40, 80, 80)).astype(np.float32)  # offset/scale are normalised away
    spectrum = sp.radial_spectrum(data, 7.0)
    assert spectrum.voxel_size == 7.0
    assert spectrum.frequency[0] == pytest.approx(1 / (80 * 7.0))
    assert np.all(np.diff(spectrum.frequency) > 0)
    nyquist = 0.5 / 7.0
    inner = band(spectrum, 0.15 * nyquist, nyquist)
    assert np.abs(spectrum.amplitude[inner] / RAYLEIGH_MEAN - 1).max() < 0.1
    assert spectrum.amplitude[inner].mean() == pytest.approx(RAYLEIGH_MEAN, rel=0.02)
    # Shells reach the corner of the Fourier box.
    assert spectrum.max_frequency == pytest.approx(math.sqrt(3) * nyquist, rel=0.02)


def test_spectrum_is_independent_of_axis_order():
    data = filtered_noise((24, 40, 64), 5.0, lorentzian(0.02), seed=2)
    a = sp.radial_spectrum(data, 5.0)
    b = sp.radial_spectrum(np.ascontiguousarray(data.transpose(2, 1, 0)), 5.0)
    np.testing.assert_allclose(a.frequency, b.frequency)
    np.testing.assert_allclose(a.amplitude, b.amplitude, rtol=1e-4)


def test_non_cubic_box_gives_the_same_spectrum_as_a_cubic_one():
    voxel = 10.0
    shape_of = lorentzian(0.008)
    cube = sp.radial_spectrum(filtered_noise((96, 96, 96), voxel, shape_of, seed=3), voxel)
    slab = sp.radial_spectrum(filtered_noise((48, 96, 96), voxel, shape_of, seed=4), voxel)
    np.testing.assert_allclose(cube.frequency[:60], slab.frequency[:60])  # same shells (longest side equal)
    inner = band(cube, 15 / (96 * voxel), 0.5 / voxel)
    ratio = slab.amplitude[inner] / cube.amplitude[inner]
    assert np.abs(ratio - 1).max() < 0.1
    # The expected shape is the generating filter.
    expected = shape_of(cube.frequency[inner])
    for spec in (cube, slab):
        shape_ratio = spec.amplitude[inner] / expected
        assert np.abs(shape_ratio / np.median(shape_ratio) - 1).max() < 0.1


def test_input_array_and_memmap_are_not_modified(tmp_path):
    data = filtered_noise((16, 32, 32), 4.0, lorentzian(0.05), seed=5)
    copy = data.copy()
    reference = sp.radial_spectrum(filtered_noise((16, 32, 32), 4.0, lorentzian(0.02), seed=6), 4.0)
    sp.radial_spectrum(data, 4.0)
    sp.equalize(data, 4.0, reference, log=quiet)
    np.testing.assert_array_equal(data, copy)
    path = tmp_path / "t.mrc"
    write_volume(path, data, 4.0)
    mapped = read_volume(path).data
    out = sp.equalize(mapped, 4.0, reference, log=quiet)
    np.testing.assert_array_equal(np.asarray(mapped), copy)
    np.testing.assert_allclose(out, sp.equalize(copy, 4.0, reference, log=quiet), atol=1e-5)
    # A view of a memory map (whose file offset numpy does not track) is read correctly too.
    np.testing.assert_allclose(sp.radial_spectrum(mapped[3:], 4.0).amplitude,
                               sp.radial_spectrum(copy[3:], 4.0).amplitude, rtol=1e-5)


def test_integer_volume_with_large_offset():
    rng = np.random.default_rng(7)
    data = (30000 + 50 * rng.standard_normal((16, 32, 32))).astype(np.uint16)
    spectrum = sp.radial_spectrum(data, 3.0)
    inner = band(spectrum, 0.2 / 6.0, 1 / 6.0)
    assert np.abs(spectrum.amplitude[inner] / RAYLEIGH_MEAN - 1).max() < 0.15


# --------------------------------------------------------------------------------------------
# equalize
# --------------------------------------------------------------------------------------------

def test_equalizing_to_own_spectrum_is_identity():
    data = filtered_noise((20, 36, 50), 6.0, lorentzian(0.03), seed=8) * 4 + 2
    out = sp.equalize(data, 6.0, sp.radial_spectrum(data, 6.0), log=quiet)
    assert out.dtype == np.float32 and out.shape == data.shape
    normalised = (data - data.mean()) / data.std()
    np.testing.assert_allclose(out, normalised, atol=2e-4)


def test_equalize_matches_reference_spectrum():
    voxel = 10.0
    a = np.random.default_rng(9).standard_normal((32, 64, 64)).astype(np.float32)
    b = filtered_noise((64, 64, 64), voxel, lorentzian(0.01), seed=10)
    reference = sp.radial_spectrum(b, voxel)
    result = sp.equalize_volume(a, voxel, reference, log=quiet)
    out = result.data
    assert out.dtype == np.float32
    assert abs(float(out.mean())) < 1e-4 and float(out.std()) == pytest.approx(1.0, abs=1e-3)
    measured = sp.radial_spectrum(out, voxel)
    inner = band(measured, 1 / 300, 1 / 25)
    deviation = measured.amplitude[inner] / reference.at(measured.frequency[inner]) - 1
    assert np.abs(deviation).max() < 0.1
    # The spectrum reported with the result is that of the output.
    np.testing.assert_allclose(result.output_spectrum.amplitude, measured.amplitude, rtol=1e-3)
    # Before: the white-noise input was far from the reference.
    before = result.input_spectrum.amplitude[inner] / reference.at(result.input_spectrum.frequency[inner]) - 1
    assert np.abs(before).max() > 0.5


def test_reference_at_other_voxel_size_is_matched_in_physical_frequency():
    shape_of = lorentzian(0.006)
    fine, coarse = 10.0, 20.0
    reference = sp.radial_spectrum(filtered_noise((48, 48, 48), coarse, shape_of, seed=11), coarse)
    notes = []
    data = np.random.default_rng(12).standard_normal((48, 96, 96)).astype(np.float32)
    result = sp.equalize_volume(data, fine, reference, log=notes.append)
    assert any("physical frequency" in n for n in notes)
    assert any("Nyquist" in n for n in notes)  # the coarse reference ends below the fine Nyquist
    measured = sp.radial_spectrum(result.data, fine)
    inner = band(measured, 4 / (48 * coarse), 0.9 * 0.5 / coarse)
    ratio = measured.amplitude[inner] / shape_of(measured.frequency[inner])
    assert np.abs(ratio / np.median(ratio) - 1).max() < 0.1
    # Beyond the reference's frequencies the gain is held (no hard zero, no boost).
    beyond = result.gain_frequency > reference.max_frequency
    assert beyond.any()
    np.testing.assert_allclose(result.gain[beyond], result.gain[beyond][0])
    assert result.gain[beyond][0] > 0


def test_lowpass():
    assert sp.lowpass_response(1 / 40, 40.0, 0.1) == pytest.approx(0.5)
    assert sp.lowpass_response(0.95 / 40, 40.0, 0.1) == pytest.approx(0.9, abs=1e-6)
    assert sp.lowpass_response(1.05 / 40, 40.0, 0.1) == pytest.approx(0.1, abs=1e-6)
    voxel = 10.0
    data = np.random.default_rng(13).standard_normal((32, 64, 64)).astype(np.float32)
    reference = sp.radial_spectrum(np.random.default_rng(14).standard_normal((32, 64, 64)), voxel)
    measured = sp.radial_spectrum(sp.equalize(data, voxel, reference, lowpass_angstrom=40.0, log=quiet), voxel)
    low = measured.at(1 / 100)
    assert measured.at(1 / 30) < 1e-3 * low
    assert measured.amplitude[-1] < 1e-3 * low  # corner frequencies attenuated too, smoothly


def test_equalize_into_memmap(tmp_path):
    data = filtered_noise((16, 32, 32), 4.0, lorentzian(0.05), seed=15)
    reference = sp.radial_spectrum(filtered_noise((16, 32, 32), 4.0, lorentzian(0.02), seed=16), 4.0)
    path = tmp_path / "out.mrc"
    with mrcfile.new_mmap(str(path), shape=data.shape, mrc_mode=2) as mrc:
        returned = sp.equalize(data, 4.0, reference, out=mrc.data, log=quiet)
        assert returned is mrc.data
    np.testing.assert_allclose(read_volume(path).data, sp.equalize(data, 4.0, reference, log=quiet), atol=1e-6)


def test_equalize_streams_slabs():
    data = filtered_noise((40, 24, 30), 4.0, lorentzian(0.05), seed=26)
    reference = sp.radial_spectrum(filtered_noise((16, 32, 32), 4.0, lorentzian(0.02), seed=27), 4.0)
    pieces = {}
    result = sp.equalize_volume(data, 4.0, reference, write_slab=lambda z0, slab: pieces.update({z0: slab.copy()}),
                                log=quiet)
    assert result.data is None
    streamed = np.concatenate([pieces[z0] for z0 in sorted(pieces)])
    np.testing.assert_allclose(streamed, sp.equalize(data, 4.0, reference, log=quiet), atol=1e-6)
    with pytest.raises(ParameterError):
        sp.equalize_volume(data, 4.0, reference, out=np.empty(data.shape, np.float32), write_slab=print)


# --------------------------------------------------------------------------------------------
# Spectrum files
# --------------------------------------------------------------------------------------------

def test_tsv_round_trip(tmp_path):
    spectrum = sp.radial_spectrum(filtered_noise((16, 32, 32), 13.48, lorentzian(0.01), seed=17), 13.48,
                                  source="x.mrc")
    path = tmp_path / "spec.tsv"
    sp.write_spectrum(path, spectrum)
    text = path.read_text().splitlines()
    assert "# voxel_size_angstrom: 13.48" in text
    assert "frequency_per_angstrom\tamplitude" in text
    back = sp.load_reference(path)
    assert back.voxel_size == pytest.approx(13.48)
    assert back.metadata["box_shape_zyx"] == "16 32 32"
    np.testing.assert_allclose(back.frequency, spectrum.frequency, rtol=1e-8)
    np.testing.assert_allclose(back.amplitude, spectrum.amplitude, rtol=1e-8)


@pytest.mark.parametrize("shape", [(48, 48, 48), (32, 64, 64)])
def test_original_tsv_is_converted_to_physical_frequency(tmp_path, shape):
    voxel = 13.48
    shape_of = lorentzian(0.006)
    volume = filtered_noise(shape, voxel, shape_of, seed=18)
    path = tmp_path / "spectrum_TS_001.tsv"
    write_original_tsv(path, original_profile(volume))
    box_xyz = shape[::-1]
    converted = sp.load_reference(path, voxel_size=voxel, box_shape=box_xyz)
    assert len(converted) == max(shape) // 2
    width = math.sqrt(sum((n / 2) ** 2 for n in shape)) / (max(shape) / 2)
    assert converted.frequency[0] == pytest.approx(1.5 * width / (max(shape) * voxel))
    # Same shape as our spectrum of the same volume, at the same physical frequencies (cubic: exact
    # binning; 1:2:2 box: approximate, see spectrum_from_original).
    ours = sp.radial_spectrum(volume, voxel)
    inner = band(converted, 5 / (max(shape) * voxel), 0.4 / voxel)
    ratio = converted.amplitude[inner] / ours.at(converted.frequency[inner])
    tolerance = 0.1 if len(set(shape)) == 1 else 0.2
    assert np.abs(ratio / np.median(ratio) - 1).max() < tolerance


def test_original_tsv_equalization_via_cli(tmp_path):
    voxel = 13.48
    volume = filtered_noise((32, 32, 32), voxel, lorentzian(0.008), seed=19)
    reference_tsv = tmp_path / "orig.tsv"
    write_original_tsv(reference_tsv, original_profile(volume))
    tomogram = tmp_path / "t.mrc"
    write_volume(tomogram, np.random.default_rng(20).standard_normal((16, 32, 32)).astype(np.float32), voxel)
    out = tmp_path / "eq.mrc"
    argv = ["equalize", "--tomogram", str(tomogram), "--reference", str(reference_tsv), "--out", str(out)]
    assert main(argv + ["--reference-voxel-size", "13.48", "--reference-box", "32", "32", "32"]) == 0
    assert out.is_file()


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name, text, words", [
    ("missing_column.tsv", "frequency_per_angstrom\tpower\n0.01\t1\n0.02\t1\n", "lacks the column"),
    ("nan.tsv", "frequency_per_angstrom\tamplitude\n0.01\tnan\n0.02\t1\n", "NaN"),
    ("text.tsv", "frequency_per_angstrom\tamplitude\n0.01\tabc\n0.02\t1\n", "not a number"),
    ("ragged.tsv", "frequency_per_angstrom\tamplitude\n0.01\t1\t3\n0.02\t1\n", "number of fields"),
    ("decreasing.tsv", "frequency_per_angstrom\tamplitude\n0.02\t1\n0.01\t1\n", "increasing"),
    ("one_row.tsv", "frequency_per_angstrom\tamplitude\n0.02\t1\n", "at least 2"),
    ("unknown.tsv", "a\tb\n1\t2\n", "unrecognised header"),
    ("empty.tsv", "# only a comment\n", "no spectrum table"),
])
def test_bad_spectrum_files(tmp_path, name, text, words):
    path = _write(tmp_path, name, text)
    with pytest.raises(InputFileError) as error:
        sp.load_reference(path)
    assert words in str(error.value) and name in str(error.value)


def test_bad_reference_files(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        sp.load_reference(tmp_path / "absent.tsv")
    with pytest.raises(InputFileError, match="not found"):
        sp.load_reference(tmp_path / "absent.mrc")
    binary = tmp_path / "binary.tsv"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputFileError, match="not a readable text"):
        sp.load_reference(binary)
    original = _write(tmp_path, "orig.tsv", "freq\tintensity\n" + "".join(f"{j}\t1.0\n" for j in range(16)))
    with pytest.raises(InputFileError, match="reference-voxel-size"):
        sp.load_reference(original)
    with pytest.raises(InputFileError, match="rows"):
        sp.load_reference(original, voxel_size=10.0, box_shape=(64, 64, 64))
    assert len(sp.load_reference(original, voxel_size=10.0, box_shape=(32, 32, 16))) == 16
    indexed = _write(tmp_path, "indexed.tsv", "\tfreq\tintensity\n" + "".join(f"{j}\t{j}\t1.0\n" for j in range(16)))
    assert len(sp.load_reference(indexed, voxel_size=10.0, box_shape=(32, 32, 16))) == 16
    with pytest.raises(ParameterError):
        sp.load_reference(original, voxel_size=-1.0, box_shape=(32, 32, 16))
    with pytest.raises(ParameterError):
        sp.load_reference(original, voxel_size=10.0, box_shape=(32, 32))
    no_voxel = tmp_path / "novoxel.mrc"
    with mrcfile.new(str(no_voxel)) as mrc:
        mrc.set_data(np.random.default_rng(0).standard_normal((8, 8, 8)).astype(np.float32))
    with pytest.raises(InputFileError, match="voxel size"):
        sp.load_reference(no_voxel)
    assert sp.load_reference(no_voxel, voxel_size=5.0).voxel_size == 5.0


def test_bad_volumes_and_parameters():
    reference = sp.radial_spectrum(np.random.default_rng(21).standard_normal((16, 16, 16)), 10.0)
    data = np.random.default_rng(22).standard_normal((16, 32, 32)).astype(np.float32)
    with pytest.raises(ParameterError, match="Nyquist"):
        sp.equalize(data, 10.0, reference, lowpass_angstrom=15.0, log=quiet)
    with pytest.raises(ParameterError, match="too small"):
        sp.equalize(data, 10.0, reference, lowpass_angstrom=1000.0, log=quiet)
    with pytest.raises(ParameterError, match="width"):
        sp.equalize(data, 10.0, reference, lowpass_angstrom=40.0, lowpass_width=0.0, log=quiet)
    with pytest.raises(ParameterError):
        sp.equalize(data, 0.0, reference, log=quiet)
    with pytest.raises(ParameterError, match="3D"):
        sp.radial_spectrum(data[0], 10.0)
    with pytest.raises(ParameterError, match="at least 2"):
        sp.radial_spectrum(data[:1], 10.0)
    with pytest.raises(ParameterError, match="RadialSpectrum"):
        sp.equalize(data, 10.0, "reference.tsv", log=quiet)
    with pytest.raises(ParameterError, match="overlap"):
        sp.equalize(data, 10.0, sp.RadialSpectrum([10.0, 11.0], [1.0, 1.0], 0.01), log=quiet)
    bad = data.copy()
    bad[3, 4, 5] = np.nan
    with pytest.raises(InputFileError, match="NaN"):
        sp.equalize(bad, 10.0, reference, source="bad.mrc", log=quiet)
    with pytest.raises(InputFileError, match="constant"):
        sp.radial_spectrum(np.ones((8, 8, 8), np.float32), 10.0, source="flat.mrc")
    with pytest.raises(ValueError):
        sp.RadialSpectrum([0.0, 0.1], [1.0, 1.0])  # DC is not a shell


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def test_cli_round_trip(tmp_path, capsys):
    voxel = 8.0
    target = tmp_path / "target.mrc"
    write_volume(target, (filtered_noise((32, 48, 48), voxel, lorentzian(0.01), seed=23) * 30).astype(np.int8), voxel)
    tomogram = tmp_path / "tomo.mrc"
    write_volume(tomogram, np.random.default_rng(24).standard_normal((24, 40, 48)).astype(np.float32), voxel)
    spectrum_tsv = tmp_path / "target_spectrum.tsv"
    assert main(["spectrum", "--tomogram", str(target), "--out", str(spectrum_tsv)]) == 0
    reference = sp.load_reference(spectrum_tsv)
    out = tmp_path / "sub" / "equalized.mrc"
    out_spectrum = tmp_path / "equalized.tsv"
    assert main(["equalize", "--tomogram", str(tomogram), "--reference", str(spectrum_tsv), "--out", str(out),
                 "--spectrum-out", str(out_spectrum), "--threads", "1"]) == 0
    assert "wrote" in capsys.readouterr().out
    volume = read_volume(out)
    assert volume.data.dtype == np.float32 and volume.data.shape == (24, 40, 48)
    assert volume.voxel_size == pytest.approx(voxel)
    assert abs(float(volume.data.mean())) < 1e-4 and float(volume.data.std()) == pytest.approx(1, abs=1e-3)
    written = sp.load_reference(out_spectrum)
    measured = sp.radial_spectrum(volume.data, voxel)
    np.testing.assert_allclose(written.amplitude, measured.amplitude, rtol=1e-3)
    inner = band(measured, 1 / 200, 0.45 / voxel)
    assert np.abs(measured.amplitude[inner] / reference.at(measured.frequency[inner]) - 1).max() < 0.1
    # The reference may also be the tomogram itself; with a low-pass.
    assert main(["equalize", "--tomogram", str(tomogram), "--reference", str(target), "--out", str(out),
                 "--lowpass-angstrom", "30", "--lowpass-width", "0.2"]) == 0
    # No temporary files are left behind.
    assert sorted(p.name for p in out.parent.iterdir()) == ["equalized.mrc"]


def test_cli_errors(tmp_path, capsys):
    tomogram = tmp_path / "tomo.mrc"
    write_volume(tomogram, np.random.default_rng(25).standard_normal((8, 16, 16)).astype(np.float32), 10.0)
    out = tmp_path / "eq.mrc"
    assert main(["equalize", "--tomogram", str(tomogram), "--reference", str(tmp_path / "nope.tsv"),
                 "--out", str(out)]) == 2
    assert "nope.tsv" in capsys.readouterr().err
    assert main(["equalize", "--tomogram", str(tomogram), "--reference", str(tomogram), "--out", str(out),
                 "--lowpass-angstrom", "12"]) == 2
    assert "Nyquist" in capsys.readouterr().err
    assert main(["equalize", "--tomogram", str(tomogram), "--reference", str(tomogram), "--out", str(tomogram)]) == 2
    assert main(["spectrum", "--tomogram", str(tomogram), "--out", str(tmp_path / "s.mrc")]) == 2
    assert not out.exists()
    with pytest.raises(SystemExit):
        main(["equalize", "--help"])
    assert "--reference-box" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# Development data (optional)
# --------------------------------------------------------------------------------------------

@pytest.mark.skipif(not (DEV / "vpp_000.mrc").is_file(), reason="shared development data not available")
def test_equalize_defocus_to_vpp_development_tomograms():
    reference = sp.load_reference(DEV / "vpp_000.mrc", log=quiet)
    volume = read_volume(DEV / "defocus_000.mrc")
    out = sp.equalize(volume.data, volume.voxel_size, reference, log=quiet)
    measured = sp.radial_spectrum(out, volume.voxel_size)
    inner = band(measured, 1 / 300, 1 / 40)
    assert np.abs(measured.amplitude[inner] / reference.at(measured.frequency[inner]) - 1).max() < 0.1
