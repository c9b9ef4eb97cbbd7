"""The evaluation protocol reports the precision-recall trade-off (summary, evaluation.json, viewer marks),
in a real headless Scipion project: one small tomogram, six true particles, eight picks. Imported
coordinates carry no score (all 0): the trade-off has one threshold, which keeps every pick; how
the threshold is chosen along a scored curve is tested in engine/tests/evaluate/test_trade_off.py."""

import os

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject
from tomo.protocols import ProtImportCoordinates3D, ProtImportTomograms

from deepict.io import write_volume
from deepict_scipion.protocols import ProtDeepictEvaluate
from deepict_scipion.viewers.viewers import DeepictEvaluationViewer

VOXEL = 10.0
TRUTH = np.array([[10.0 + 12 * i, 20, 10] for i in range(6)])
FALSE = np.array([[20.0, 50, 10], [60.0, 50, 10]])


class TestDeepictEvaluateTradeOff(BaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        root = os.path.abspath(cls.proj.getTmpPath("data"))
        for folder in ("tomos", "truth", "picks"):
            os.makedirs(os.path.join(root, folder), exist_ok=True)
        write_volume(os.path.join(root, "tomos", "tomo0.mrc"), np.zeros((20, 64, 96), np.float32), VOXEL)
        np.savetxt(os.path.join(root, "truth", "tomo0.txt"), TRUTH, fmt="%.2f")
        np.savetxt(os.path.join(root, "picks", "tomo0.txt"), np.vstack([TRUTH, FALSE]), fmt="%.2f")
        tomograms = cls.newProtocol(ProtImportTomograms, filesPath=os.path.join(root, "tomos"),
                                    filesPattern="tomo*.mrc", samplingRate=VOXEL)
        cls.launchProtocol(tomograms)
        cls.truth, cls.picks = (cls._importCoordinates(os.path.join(root, name), tomograms.Tomograms)
                                for name in ("truth", "picks"))

    @classmethod
    def _importCoordinates(cls, folder, tomograms):
        prot = cls.newProtocol(ProtImportCoordinates3D, filesPath=folder, filesPattern="tomo*.txt",
                               importTomograms=tomograms, boxSize=24)
        cls.launchProtocol(prot)
        return prot.outputCoordinates

    def test_summary_and_viewer_show_the_precision_recall_trade_off(self):
        prot = self.newProtocol(ProtDeepictEvaluate, inputCoordinates=self.picks, groundTruthCoordinates=self.truth,
                                radius=2, numberOfThreads=1)
        self.launchProtocol(prot)
        overall = prot.loadEvaluation()["overall"]
        self.assertEqual((overall["tp"], overall["fp"], overall["fn"]), (6, 2, 0))
        points = overall["trade_off"]
        self.assertEqual([p["recall_at_least"] for p in points], [0.5, 0.7, 0.8, 0.9, 0.95])
        self.assertEqual({(p["threshold"], p["n_kept"], p["precision"], p["recall"]) for p in points},
                         {(0.0, 8, 0.75, 1.0)})
        summary = "\n".join(prot.summary())
        self.assertIn("Precision-recall trade-off", summary)
        self.assertIn("recall >= 0.9: score >= 0.000 keeps 8 picks, precision 0.750, recall 1.000", summary)
        marks = DeepictEvaluationViewer.tradeOffMarks(prot.loadEvaluation())
        self.assertEqual(marks[0], (1.0, 0.75, "score ≥ 0.00"))
        png = DeepictEvaluationViewer(project=self.proj, protocol=prot).evaluationPng(
            prot, os.path.abspath(self.proj.getTmpPath("evaluation.png")))
        self.assertGreater(os.path.getsize(png), 1000)
