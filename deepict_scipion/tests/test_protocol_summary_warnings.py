"""The pick protocol's summary warns about published networks, for models imported in a real project, and
about a pick whose cluster fills the tomogram, for picks run in one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject
from tomo.protocols import ProtImportTomograms, ProtImportTomomasks

from deepict.conventions import CONTEXT_MODES
from deepict.io import write_volume
from deepict.nn.model_files import (KIND_3D, POSTPROCESS_CALIBRATION, PUBLISHED_SOURCE_PREFIX, ModelInfo,
                                    build_network, save_model)
from deepict_scipion.protocols import ProtDeepictImportModel, ProtDeepictPick

PUBLISHED = Path(__file__).resolve().parents[3] / "shared" / "models" / "published"
VOXEL = 13.48


def tiny_model(path: Path, source: str | None = None, probability: float | None = None) -> Path:
    """An untrained 3D model file, optionally marked as imported from ``source``; with ``probability``, a
    particle model whose map is that everywhere, calibrated at threshold 0.5 (one-voxel minimum size)."""
    info = ModelInfo(kind=KIND_3D, classes=["ribosome"], voxel_size=VOXEL, patch_size=16, overlap=4,
                     architecture={"depth": 1, "initial_features": 2, "out_channels": 1, "batch_norm": False},
                     **({"source": source} if source else {}))
    network = build_network(info)
    if probability is not None:
        info.label_kind, info.sphere_radius = "spheres", {"ribosome": 4.0}
        info.postprocess = {"threshold": 0.5, "min_size": 1, "max_size": None}
        info.training[POSTPROCESS_CALIBRATION] = dict(info.postprocess)
        network.out_conv.weight.data.zero_()
        network.out_conv.bias.data.fill_(float(np.log(probability / (1 - probability))))
    save_model(path, network, info)
    return path


class TestPickSummaryWarnsAboutPublishedNetworks(BaseTest):
    """The pick protocol's summary carries the same warning, for a model imported in a real project."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.folder = Path(cls.proj.getTmpPath("models")).resolve()
        cls.folder.mkdir(parents=True, exist_ok=True)

    def summaryWith(self, model_file: Path, **import_parameters) -> str:
        imported = self.newProtocol(ProtDeepictImportModel, modelFile=str(model_file), **import_parameters)
        self.launchProtocol(imported)
        pick = self.newProtocol(ProtDeepictPick, inputModel=imported.deepictModel)
        return "\n".join(pick._summary())

    def test_a_model_that_looks_imported_from_the_published_set(self):
        published = tiny_model(self.folder / "published.pt", source=f"{PUBLISHED_SOURCE_PREFIX} ribo.pth")
        summary = self.summaryWith(published)
        self.assertIn("Warning: this published DeePiCt network", summary)
        self.assertIn("deepict equalize", summary)
        self.assertNotIn("published DeePiCt network", self.summaryWith(tiny_model(self.folder / "ours.pt")))

    def test_the_published_ribosome_network(self):
        checkpoint = PUBLISHED / "ribosomeModel.pth"
        if not checkpoint.is_file():
            self.skipTest(f"{checkpoint} is not available")
        self.assertIn("spectrum-matched", self.summaryWith(checkpoint, voxelSize=VOXEL))


class TestPickSummaryWarnsAboutAMapFillingCluster(BaseTest):
    """A network whose map lies above the threshold nearly everywhere gives one pick over the whole tomogram, or
    over the whole of an intersected context mask: the summary says so, as the log does. With test-time rotations,
    pick keeps the calibrated threshold there instead."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        folder = Path(cls.proj.getTmpPath("data")).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        write_volume(folder / "noise.mrc", np.random.default_rng(0).normal(size=(24, 40, 40)).astype(np.float32),
                     VOXEL)
        cls.tomograms = cls.newProtocol(ProtImportTomograms, filesPath=str(folder), filesPattern="noise.mrc",
                                        samplingRate=VOXEL)
        cls.launchProtocol(cls.tomograms)
        # a context of 3 % of the tomogram: a cluster filling it stays below the 10 % of the whole tomogram
        context = np.zeros((24, 40, 40), np.int8)
        context[8:14, 10:20, 10:18] = 1
        masks = folder / "masks"
        masks.mkdir()
        write_volume(masks / "noise.mrc", context, VOXEL)
        cls.context = cls.newProtocol(ProtImportTomomasks, filesPath=str(masks), filesPattern="noise.mrc",
                                      inputTomos=cls.tomograms.Tomograms)
        cls.launchProtocol(cls.context)
        cls.model = cls.newProtocol(ProtDeepictImportModel,
                                    modelFile=str(tiny_model(folder / "weak.pt", probability=0.45)))
        cls.launchProtocol(cls.model)

    def pick(self, **parameters):
        pick = self.newProtocol(ProtDeepictPick, inputTomograms=self.tomograms.Tomograms,
                                inputModel=self.model.deepictModel, window=32, **parameters)
        self.launchProtocol(pick)
        log = "".join(Path(path).read_text() for path in pick.getLogPaths() if Path(path).is_file())
        return pick, "\n".join(pick._summary()), log

    def test_a_threshold_that_joins_the_map_into_one_cluster(self):
        pick, summary, log = self.pick(threshold=0.4)
        self.assertEqual(getattr(pick, pick.OUTPUT_PREFIX).getSize(), 1)
        self.assertIn("Warning: in noise (the tomogram) one cluster covers more than 10 % of what could be picked",
                      summary)
        self.assertIn("warning: at threshold 0.4 one cluster covers 100 % of the tomogram", log)

    def test_a_threshold_that_joins_an_intersected_context_into_one_cluster(self):
        pick, summary, log = self.pick(threshold=0.4, contextMasks=self.context.tomomasks,
                                       contextMode=CONTEXT_MODES.index("intersection"))
        self.assertEqual(getattr(pick, pick.OUTPUT_PREFIX).getSize(), 1)
        self.assertIn("warning: at threshold 0.4 one cluster covers 100 % of the context mask", log)
        self.assertIn("Warning: in noise (the context mask) one cluster covers more than 10 % of what could be "
                      "picked", summary)

    def test_rotations_keep_the_calibrated_threshold_there(self):
        pick, summary, log = self.pick(testTimeRotations=True)
        self.assertIn("clustering at the model's calibrated threshold 0.5 instead", log)
        self.assertEqual(getattr(pick, pick.OUTPUT_PREFIX).getSize(), 0)
        self.assertNotIn("one cluster covers", summary)
