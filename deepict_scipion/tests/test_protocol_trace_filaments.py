"""Trace filaments in a real (headless) Scipion project.

A synthetic filament tomogram (microtubule- and actin-like filaments crossing, touching, leaving and
re-entering the volume) and its filament mask, imported with tomo's own importers; the protocol traces
them from the binary mask and from a probability map: one group per filament, coordinates on the true
centre lines, each coordinate's matrix holding the filament's direction as reliontomo reads it.
"""

import os
from unittest import mock

import numpy as np
from pwem.convert.transformations import euler_matrix
from pyworkflow.tests import BaseTest, setupTestProject
from scipy.spatial import cKDTree
from tomo.constants import BOTTOM_LEFT_CORNER, TR_RELION
from tomo.objects import SetOfTomoMasks
from tomo.protocols import ProtImportTomograms, ProtImportTomomasks

from deepict.infer.rescale import to_grid_voxels
from deepict.io import read_coordinates, write_volume
from deepict.orientations import euler_to_matrix, tilt_psi_to_direction
from deepict.synthetic import FilamentSceneConfig, make_filament_scene
from deepict_scipion.convert import coordinateAngles, orientationMatrix
from deepict_scipion.protocols import ProtDeepictTraceFilaments
from deepict_scipion.protocols.protocol_trace_filaments import MASK_KINDS

SPACING = 40.0


def writeData(root, scene):
    folders = {name: os.path.join(root, name) for name in ("tomos", "masks", "maps")}
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
    write_volume(os.path.join(folders["tomos"], "fil0.mrc"), scene.tomogram, scene.voxel_size)
    mask = scene.masks["filaments"]
    write_volume(os.path.join(folders["masks"], "fil0.mrc"), mask.astype(np.int8), scene.voxel_size)
    write_volume(os.path.join(folders["maps"], "fil0.mrc"), (0.1 + 0.8 * mask).astype(np.float32), scene.voxel_size)
    return folders


class TestDeepictTraceFilaments(BaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.scene = make_filament_scene(FilamentSceneConfig(shape_zyx=(64, 160, 160)))
        cls.folders = writeData(os.path.abspath(cls.proj.getTmpPath("data")), cls.scene)
        cls.tomos = cls._import(ProtImportTomograms, filesPath=cls.folders["tomos"], filesPattern="fil*.mrc",
                                samplingRate=cls.scene.voxel_size).Tomograms
        cls.masks = cls._importMasks(cls.folders["masks"])
        cls.maps = cls._importMasks(cls.folders["maps"])

    @classmethod
    def _import(cls, protocolClass, **values):
        protocol = cls.newProtocol(protocolClass, **values)
        cls.launchProtocol(protocol)
        return protocol

    @classmethod
    def _importMasks(cls, folder):
        return cls._import(ProtImportTomomasks, filesPath=folder, filesPattern="fil*.mrc",
                           inputTomos=cls.tomos).tomomasks

    def _trace(self, masks, kind, **values):
        protocol = self.newProtocol(ProtDeepictTraceFilaments, inputTomograms=self.tomos, inputMasks=masks,
                                    maskKind=MASK_KINDS.index(kind), spacing=SPACING, **values)
        self.launchProtocol(protocol)
        return protocol

    def _checkFilaments(self, protocol, binning=1):
        """``binning``: the masks' voxel size over the tomograms'."""
        output = protocol.outputCoordinates
        self.assertEqual(output.getSamplingRate(), self.scene.voxel_size / binning)
        coords = [c.clone() for c in output.iterCoordinates()]
        groups = {c.getGroupId() for c in coords}
        self.assertEqual(len(groups), len(self.scene.centre_lines))  # 7: the re-entering actin is two
        truth = to_grid_voxels(np.concatenate(self.scene.centre_lines), binning)
        tangents = np.concatenate([np.gradient(line, axis=0) for line in self.scene.centre_lines])
        xyz = np.array([c.getPosition(BOTTOM_LEFT_CORNER) for c in coords])
        distance, nearest = cKDTree(truth).query(xyz)
        self.assertGreaterEqual(np.mean(distance <= 1.5 * binning), 0.95)
        angles = np.array([coordinateAngles(c) for c in coords])
        directions = tilt_psi_to_direction(angles[:, 1], angles[:, 2])
        cosines = np.abs(np.sum(directions * tangents[nearest], axis=1)) / np.linalg.norm(tangents[nearest], axis=1)
        self.assertGreater(np.median(cosines), np.cos(np.radians(10)))
        table = read_coordinates(protocol._tablePath("fil0"))
        np.testing.assert_allclose(angles[:, 1:], table.angles()[:, 1:], atol=1e-3)
        summary = "\n".join(protocol.summary())
        self.assertIn(f"{len(groups)} filament{'' if len(groups) == 1 else 's'} traced in 1 tomogram:", summary)
        self.assertTrue(protocol.methods())
        return coords

    def test_binary_masks_give_one_group_per_filament_with_orientations(self):
        coords = self._checkFilaments(self._trace(self.masks, "binary masks", rotStep=360 / 13))
        # reliontomo reads the matrix back as the same RELION angles (its genTransformMatrix convention)
        rot, tilt, psi = coordinateAngles(coords[1])
        stored = coords[1].getMatrix(convention=TR_RELION)
        np.testing.assert_allclose(stored, np.linalg.inv(euler_matrix(*np.radians([-rot, -tilt, -psi]), 'szyz')),
                                   atol=1e-6)
        np.testing.assert_allclose(orientationMatrix(rot, tilt, psi)[:3, :3], euler_to_matrix(rot, tilt, psi).T)
        self.assertAlmostEqual(coordinateAngles(coords[1])[0], 360 / 13, places=3)

    def test_an_export_of_traced_filaments_writes_helical_tubes_not_classes(self):
        """Each filament became a class (rlnClassNumber 1..20) and the helical columns were lost."""
        from emtable import Table
        from deepict_scipion.protocols import ProtDeepictExport
        traced = self._trace(self.masks, "binary masks")
        export = self.newProtocol(ProtDeepictExport, inputCoordinates=traced.outputCoordinates)
        self.launchProtocol(export)
        rows = list(Table(fileName=export.exportTarget("relion4"), tableName="particles"))
        coords = [c.clone() for c in traced.outputCoordinates.iterCoordinates()]
        self.assertEqual(len(rows), len(coords))
        self.assertEqual({int(r.rlnClassNumber) for r in rows}, {1})
        tubes = [int(r.rlnHelicalTubeID) for r in rows]
        self.assertEqual(sorted(set(tubes)), sorted({c.getGroupId() for c in coords}))
        for tube in set(tubes):  # one half-set per tube, the track length rising along it from 0
            mine = [r for r, t in zip(rows, tubes) if t == tube]
            self.assertEqual(len({int(r.rlnRandomSubset) for r in mine}), 1)
            lengths = [r.rlnHelicalTrackLengthAngst for r in mine]
            self.assertEqual(lengths[0], 0.0)
            self.assertTrue(all(b > a for a, b in zip(lengths, lengths[1:])))
            self.assertAlmostEqual(lengths[1], SPACING, delta=0.5 * SPACING)

    def test_the_picks_viewer_shows_filaments_as_dots_labelled_by_filament(self):
        """Traced filaments were labelled "class N", circled at the box's radius (the circles merged into one band
        per filament) and the legend covered the picks."""
        from matplotlib.collections import EllipseCollection
        from deepict_scipion.viewers import DeepictPicksViewer, plots

        traced = self._trace(self.masks, "binary masks").outputCoordinates
        viewer = DeepictPicksViewer(project=self.proj)
        item, = viewer.slabItems(traced)
        self.assertTrue(item["filaments"])
        self.assertEqual(list(item["picks"]), [f"filament {n}" for n in range(1, len(self.scene.centre_lines) + 1)])
        png, = viewer.slabPngs(traced, os.path.abspath(self.proj.getTmpPath("slabs")))
        self.assertGreater(os.path.getsize(png), 1000)
        data, _ = plots.load_slab_inputs(item["tomogram"])
        figure = plots._new_figure(8 + plots.LEGEND_WIDTH_INCHES, 8)
        ax = figure.add_axes([0.08, 0.08, 7.0 / (8 + plots.LEGEND_WIDTH_INCHES), 0.84])
        plots.draw_slab(ax, data, item["picks"], 32, radius=viewer.circleRadius(traced), filaments=True)
        figure.canvas.draw()
        self.assertFalse([c for c in ax.collections if isinstance(c, EllipseCollection)])  # dots, no circles
        self.assertGreaterEqual(ax.get_legend().get_window_extent().x0, ax.get_window_extent().x1)  # beside it
        # many filaments: no legend (it would be taller than the image), their number in the title
        many = {f"filament {n}": np.array([[5.0 * n, 10.0, 32.0]]) for n in range(1, 21)}
        plots.draw_slab(ax, data, many, 32, filaments=True)
        self.assertIsNone(ax.get_legend())
        self.assertIn("20 filaments", ax.get_title())

    def test_probability_maps_are_thresholded(self):
        self._checkFilaments(self._trace(self.maps, "probability maps", threshold=0.5))

    def test_masks_of_the_binned_tomograms_give_coordinates_in_the_unbinned_ones(self):
        # The same tomogram at half the voxel size (twice the voxels along each axis), the masks made at bin 2.
        folder = os.path.abspath(self.proj.getTmpPath("unbinned"))
        os.makedirs(folder)
        unbinned = self.scene.tomogram.repeat(2, 0).repeat(2, 1).repeat(2, 2)
        write_volume(os.path.join(folder, "fil0.mrc"), unbinned, self.scene.voxel_size / 2)
        tomos = self._import(ProtImportTomograms, filesPath=folder, filesPattern="fil*.mrc",
                             samplingRate=self.scene.voxel_size / 2).Tomograms
        protocol = self.newProtocol(ProtDeepictTraceFilaments, inputTomograms=tomos, inputMasks=self.masks,
                                    spacing=SPACING)
        self.launchProtocol(protocol)
        self._checkFilaments(protocol, binning=2)
        # Masks that do not cover the tomograms (here: only half of them along each axis) are refused.
        halfTomos = self._import(ProtImportTomograms, filesPath=self.folders["tomos"], filesPattern="fil*.mrc",
                                 samplingRate=self.scene.voxel_size * 2).Tomograms
        refused = self.newProtocol(ProtDeepictTraceFilaments, inputTomograms=halfTomos, inputMasks=self.masks,
                                   spacing=SPACING)
        self.assertIn("covers", "\n".join(refused.validate()))

    def test_masks_without_a_sampling_rate_are_refused_as_such(self):
        protocol = self.newProtocol(ProtDeepictTraceFilaments, inputTomograms=self.tomos, inputMasks=self.masks,
                                    spacing=SPACING)
        with mock.patch.object(SetOfTomoMasks, "getSamplingRate", return_value=None):
            errors = "\n".join(protocol.validate())
        self.assertIn("Filament masks: the sampling rate of the masks is unknown", errors)
        self.assertNotIn("0.00", errors)

    def test_a_spacing_below_a_voxel_is_refused(self):
        protocol = self.newProtocol(ProtDeepictTraceFilaments, inputTomograms=self.tomos, inputMasks=self.masks,
                                    spacing=5.0)
        self.assertIn("smaller than a voxel", "\n".join(protocol.validate()))
        job = protocol.traceJob("fil0", "/data/fil0_mask.mrc")
        self.assertEqual((job.mask, job.voxel_size), ("/data/fil0_mask.mrc", self.scene.voxel_size))
