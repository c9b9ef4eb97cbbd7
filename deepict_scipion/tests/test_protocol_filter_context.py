"""Filter coordinates by context in a real (headless) Scipion project.

Two small synthetic tomograms with hand-placed coordinates and a mask covering the left part of each
(imported with tomo's own importers, as coordinates of any picker would be): intersection with masks
at the coordinates' sampling rate, contact and colocalization with masks imported at twice the voxel
size, nothing lost (kept + rejected = input), attributes and sampling rates kept, and _validate
naming a tomogram without a mask.
"""

import os

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject
from tomo.constants import BOTTOM_LEFT_CORNER
from tomo.protocols import ProtImportCoordinates3D, ProtImportTomograms, ProtImportTomomasks

from deepict.conventions import CONTEXT_MODES
from deepict.io import write_volume
from deepict_scipion.convert import coordinatesByKey
from deepict_scipion.protocols import ProtDeepictFilterContext

VOXEL = 10.0
SHAPE = (24, 48, 48)  # z, y, x
MASK_END_X = 24  # the masks cover x < 24 (voxels of the tomogram), every y and z
#: x of the coordinates: in the mask, at its border, 3 and 7 voxels beyond it, far away.
XS = (5.0, 10.0, 20.0, 26.0, 30.0, 40.0)
NAMES = ("tomo0", "tomo1")
BOX = 24


def writeData(root):
    rng = np.random.default_rng(3)
    folders = {name: os.path.join(root, name) for name in ("tomos", "tomos_bin2", "coords", "masks", "masks_bin2")}
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
    for name in NAMES:
        write_volume(os.path.join(folders["tomos"], f"{name}.mrc"), rng.normal(size=SHAPE).astype(np.float32), VOXEL)
        binned = tuple(s // 2 for s in SHAPE)
        write_volume(os.path.join(folders["tomos_bin2"], f"{name}.mrc"), np.zeros(binned, np.float32), 2 * VOXEL)
        mask = np.zeros(SHAPE, np.int8)
        mask[:, :, :MASK_END_X] = 1
        write_volume(os.path.join(folders["masks"], f"{name}.mrc"), mask, VOXEL)
        write_volume(os.path.join(folders["masks_bin2"], f"{name}.mrc"), mask[::2, ::2, ::2], 2 * VOXEL)
        points = [[x, rng.integers(4, SHAPE[1] - 4), rng.integers(4, SHAPE[0] - 4)] for x in XS for _ in range(2)]
        np.savetxt(os.path.join(folders["coords"], f"{name}.txt"), np.array(points), fmt="%.1f")
    return folders


class TestDeepictFilterContext(BaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.folders = writeData(os.path.abspath(cls.proj.getTmpPath("data")))
        cls.tomos = cls._import(ProtImportTomograms, filesPath=cls.folders["tomos"], filesPattern="tomo*.mrc",
                                samplingRate=VOXEL).Tomograms
        tomosBin2 = cls._import(ProtImportTomograms, filesPath=cls.folders["tomos_bin2"], filesPattern="tomo*.mrc",
                                samplingRate=2 * VOXEL).Tomograms
        cls.coords = cls._import(ProtImportCoordinates3D, filesPath=cls.folders["coords"], filesPattern="tomo*.txt",
                                 importTomograms=cls.tomos, boxSize=BOX).outputCoordinates
        cls.masks = cls._importMasks(cls.folders["masks"], "tomo*.mrc", cls.tomos)
        cls.masksBin2 = cls._importMasks(cls.folders["masks_bin2"], "tomo*.mrc", tomosBin2)
        cls.maskOfTomo0 = cls._importMasks(cls.folders["masks"], "tomo0.mrc", cls.tomos)

    @classmethod
    def _import(cls, protocolClass, **values):
        protocol = cls.newProtocol(protocolClass, **values)
        cls.launchProtocol(protocol)
        return protocol

    @classmethod
    def _importMasks(cls, folder, pattern, tomograms):
        return cls._import(ProtImportTomomasks, filesPath=folder, filesPattern=pattern, inputTomos=tomograms).tomomasks

    def _filter(self, masks, mode, distance=0.0):
        protocol = self.newProtocol(ProtDeepictFilterContext, inputCoordinates=self.coords, inputMasks=masks,
                                    contextMode=CONTEXT_MODES.index(mode), distance=distance)
        self.launchProtocol(protocol)
        return protocol

    def _checkSplit(self, protocol, keeps):
        """kept + rejected = the input, each coordinate kept where ``keeps(x)`` says, attributes unchanged."""
        kept, rejected = protocol.outputCoordinates, protocol.rejectedCoordinates
        self.assertEqual(kept.getSize() + rejected.getSize(), self.coords.getSize())
        source = {c.getObjId(): c.clone() for c in self.coords.iterCoordinates()}
        keptIds = {c.getObjId() for c in kept.iterCoordinates()}
        rejectedIds = {c.getObjId() for c in rejected.iterCoordinates()}
        self.assertEqual(keptIds | rejectedIds, set(source))
        self.assertFalse(keptIds & rejectedIds)
        for output in (kept, rejected):
            self.assertEqual(output.getSamplingRate(), VOXEL)
            self.assertEqual(output.getBoxSize(), BOX)
            self.assertEqual(sorted(map(str, output.getTSIds())), sorted(map(str, self.coords.getTSIds())))
            for coord in output.iterCoordinates():
                original = source[coord.getObjId()]
                self.assertEqual(coord.getTomoId(), original.getTomoId())
                np.testing.assert_allclose(coord.getPosition(BOTTOM_LEFT_CORNER),
                                           original.getPosition(BOTTOM_LEFT_CORNER))
                self.assertEqual(coord.getVolume().getFileName(), original.getVolume().getFileName())
        stored = coordinatesByKey(self.coords)
        for name in NAMES:
            expected = sorted(tuple(p) for p in stored[name] if keeps(p[0]))
            got = sorted(tuple(p) for p in coordinatesByKey(kept).get(name, []))
            self.assertEqual(got, expected, name)
        self.assertTrue(0 < kept.getSize() < self.coords.getSize())
        summary = "\n".join(protocol.summary())
        self.assertIn(f"{kept.getSize()} of {self.coords.getSize()} coordinates kept", summary)
        self.assertTrue(protocol.methods())

    def test_intersection_keeps_the_coordinates_in_the_masks(self):
        protocol = self._filter(self.masks, "intersection")
        self._checkSplit(protocol, lambda x: x < MASK_END_X - 0.5)

    def test_contact_with_masks_at_twice_the_voxel_size(self):
        # mask voxels of 20 Å: x = 26 lies (26.5 / 2 - 0.5) - 11 = 1.75 mask voxels = 35 Å from the mask, x = 30 75 Å
        protocol = self._filter(self.masksBin2, "contact", distance=40.0)
        self._checkSplit(protocol, lambda x: x <= 26)

    def test_colocalization_keeps_the_border_of_the_masks(self):
        # the surface is the mask's last column (x = 11 of 20 Å voxels; the volume's edges are no surface):
        # x = 20 lies 25 Å from it, x = 26 35 Å, x = 10 125 Å, x = 30 75 Å
        protocol = self._filter(self.masksBin2, "colocalization", distance=40.0)
        self._checkSplit(protocol, lambda x: 15 < x <= 26)

    def test_a_tomogram_without_a_mask_is_refused_by_name(self):
        protocol = self.newProtocol(ProtDeepictFilterContext, inputCoordinates=self.coords,
                                    inputMasks=self.maskOfTomo0)
        errors = "\n".join(protocol.validate())
        self.assertIn("no mask for tomogram(s) tomo1", errors)
        self.assertNotIn("tomo0", errors)

    def test_the_job_takes_scipions_sampling_rates_and_the_tomogram(self):
        protocol = self.newProtocol(ProtDeepictFilterContext, inputCoordinates=self.coords, inputMasks=self.masksBin2,
                                    contextMode=CONTEXT_MODES.index("contact"), distance=12.5)
        self.assertEqual(protocol.validate(), [])
        job = protocol.filterJob("tomo0", "/data/tomo0_mask.mrc")
        self.assertEqual((job.mode, job.distance_angstrom), ("contact", 12.5))
        self.assertEqual((job.voxel_size, job.context_voxel_size), (VOXEL, 2 * VOXEL))
        self.assertTrue(job.tomogram.endswith("tomo0.mrc") and os.path.isabs(job.tomogram))
        self.assertTrue(job.rejected and job.out != job.rejected)
