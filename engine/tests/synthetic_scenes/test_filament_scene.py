"""The synthetic filament scene: masks, exact centre lines, the cases it promises, files on disk."""

import numpy as np

from deepict.io import read_coordinates, read_volume
from deepict.synthetic import FilamentSceneConfig, make_filament_scene, write_filament_scene
from deepict.synthetic.filaments import FILAMENT_RADII_ANGSTROM


def test_scene_masks_centre_lines_and_files(tmp_path):
    scene = make_filament_scene(FilamentSceneConfig(shape_zyx=(48, 128, 128), snr=2.0))
    assert scene.tomogram.shape == (48, 128, 128) and abs(scene.tomogram.std() - 1) < 1e-3
    assert (scene.masks["filaments"] == (scene.masks["microtubule"] | scene.masks["actin"])).all()
    # the actin leaving through y = 0 comes back: 6 filaments of the layout, 7 pieces in the volume
    assert len(scene.centre_lines) == 7 and scene.kinds.count("microtubule") == 2
    for line, kind in zip(scene.centre_lines, scene.kinds):
        steps = np.linalg.norm(np.diff(line, axis=0), axis=1)
        assert np.allclose(steps, 0.25, atol=0.01)
        inside = np.round(line[4:-4:7]).astype(int).clip(0, np.array(scene.masks["filaments"].shape[::-1]) - 1)
        assert scene.masks[kind][inside[:, 2], inside[:, 1], inside[:, 0]].all()
    # the two microtubules touch: their centre lines come within two outer radii (no closer)
    outer = FILAMENT_RADII_ANGSTROM["microtubule"][1] / scene.voxel_size
    a, b = (line for line, kind in zip(scene.centre_lines, scene.kinds) if kind == "microtubule")
    closest = np.min(np.linalg.norm(a[::4, None] - b[None, ::4], axis=-1))
    assert 2 * outer - 0.5 < closest < 2 * outer + 0.5
    paths = write_filament_scene(scene, tmp_path, "fil")
    assert read_volume(paths["filaments"]).voxel_size == scene.voxel_size  # the header read as written
    table = read_coordinates(paths["centre_lines"])
    assert len(set(table.columns["filament_id"].tolist())) == 7


def test_large_scene_without_imaging_has_no_tomogram():
    scene = make_filament_scene(FilamentSceneConfig(shape_zyx=(40, 96, 96), n_random_actin=2, seed=3), image=False)
    assert scene.tomogram is None and len(scene.centre_lines) >= 9
