"""The nuclear-pore chain in a real (headless) Scipion project: train 3D on envelope and NPC masks ->
segment the envelope -> pick NPCs by contact with it, oriented by its normal -> coordinates whose
matrices hold those orientations.

The networks are trained for seconds (the chain's plumbing is tested here; the quality is measured by
benchmarks/bench_npc_membranes.py and engine/tests/test_npc_workflow.py).
"""

import glob
import os

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject
from tomo.protocols import ProtImportTomograms, ProtImportTomomasks

from deepict.conventions import CONTEXT_MODES
from deepict.io import read_coordinates
from deepict.orientations import is_rotation, tilt_psi_to_direction
from deepict.synthetic import EnvelopeConfig, make_envelope_dataset
from deepict_scipion.convert import coordinateAngles
from deepict_scipion.protocols import ProtDeepictPick, ProtDeepictSegment3D, ProtDeepictTrain3D

SCENES = EnvelopeConfig(shape_zyx=(32, 64, 64), voxel_size=48.0, n_npc=2, n_decoys=0, snr=8.0)
TINY_TRAINING = dict(depth=2, initialFeatures=4, epochs=2, iterationsPerEpoch=3, batchSize=2, patchSize=24,
                     valFraction=0.0, augment=False)


class TestDeepictNpcChain(BaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        data = os.path.abspath(cls.proj.getTmpPath("data"))
        scenes = make_envelope_dataset(data, 2, SCENES, seed=5, prefix="tomo")
        for kind in ("envelope", "npc"):
            os.makedirs(os.path.join(data, kind), exist_ok=True)
            for scene in scenes:
                os.rename(scene[kind], os.path.join(data, kind, f"{scene['name']}.mrc"))
        cls.tomos = cls._launch(ProtImportTomograms, filesPath=data, filesPattern="tomo_00?.mrc",
                                samplingRate=SCENES.voxel_size).Tomograms
        cls.models = {}
        for kind in ("envelope", "npc"):
            masks = cls._launch(ProtImportTomomasks, filesPath=os.path.join(data, kind), filesPattern="tomo*.mrc",
                                inputTomos=cls.tomos).tomomasks
            train = cls.newProtocol(ProtDeepictTrain3D, inputTomograms=cls.tomos, labelSource=1, classNames=kind,
                                    **TINY_TRAINING)
            train.inputMasks.append(masks)
            cls.launchProtocol(train)
            cls.models[kind] = train.deepictModel
        cls.envelope = cls._launch(ProtDeepictSegment3D, inputTomograms=cls.tomos, inputModel=cls.models["envelope"],
                                   threshold=0.05, minSize=1).segmentations

    @classmethod
    def _launch(cls, protocolClass, **values):
        protocol = cls.newProtocol(protocolClass, **values)
        cls.launchProtocol(protocol)
        return protocol

    def test_npc_picked_by_contact_carry_the_envelope_normal_in_their_matrices(self):
        pick = self._launch(ProtDeepictPick, inputTomograms=self.tomos, inputModel=self.models["npc"],
                            threshold=0.05, minSize=1, contextMasks=self.envelope,
                            contextMode=CONTEXT_MODES.index("contact"), contextDistance=2.0, orientByContext=True)
        coordinates = getattr(pick, pick.OUTPUT_PREFIX)
        self.assertGreater(coordinates.getSize(), 0, "a threshold of 0.05 must yield clusters")
        tables = {}
        for path in glob.glob(pick._getExtraPath("*_picks.csv")):
            table = read_coordinates(path)
            self.assertTrue({"rot", "tilt", "psi"} <= set(table.columns))
            tables[path] = table
        self.assertEqual(len(tables), 2)
        for coord in coordinates.iterCoordinates():
            matrix = np.asarray(coord.getMatrix())
            self.assertTrue(is_rotation(matrix[:3, :3]))
            rot, tilt, psi = coordinateAngles(coord)
            # the z axis of the coordinate's orientation is a normal of the table (the same pick's)
            axis = tilt_psi_to_direction(tilt, psi)
            axes = [tilt_psi_to_direction(t, p) for table in tables.values()
                    for t, p in zip(table.columns["tilt"], table.columns["psi"])]
            self.assertTrue(any(np.allclose(axis, other, atol=1e-3) for other in axes))
            self.assertAlmostEqual(rot, 0.0, places=3)

    def test_orienting_without_context_masks_is_refused_in_validate(self):
        pick = self.newProtocol(ProtDeepictPick, inputTomograms=self.tomos, inputModel=self.models["npc"],
                                orientByContext=True)
        self.assertTrue(any("needs context masks" in error for error in pick.validate()), pick.validate())
