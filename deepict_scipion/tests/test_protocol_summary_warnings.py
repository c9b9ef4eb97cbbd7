"""The summaries of the pick and segment protocols warn: about published networks, for models imported in a real
project; and with what the engine warned of in a run (a pick whose cluster fills the tomogram, a segmentation that
does), listed as Scipion's run warnings (the run's box takes the warning colour)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject
from tomo.protocols import ProtImportTomograms, ProtImportTomomasks

from deepict.conventions import CONTEXT_MODES
from deepict.io import write_volume
from deepict.nn.model_files import (KIND_3D, POSTPROCESS_CALIBRATION, PUBLISHED_SOURCE_PREFIX, ModelInfo,
                                    build_network, save_model)
from deepict_scipion.protocols import ProtDeepictImportModel, ProtDeepictPick, ProtDeepictSegment3D

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
    """The pick protocol's summary carries the same warning, for a model imported in a real project: in full once,
    among the run's warnings, with a one-line pointer to it in the summary."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.folder = Path(cls.proj.getTmpPath("models")).resolve()
        cls.folder.mkdir(parents=True, exist_ok=True)

    def summaryWith(self, model_file: Path, **import_parameters) -> str:
        imported = self.newProtocol(ProtDeepictImportModel, modelFile=str(model_file), **import_parameters)
        self.launchProtocol(imported)
        pick = self.newProtocol(ProtDeepictPick, inputModel=imported.deepictModel)
        pick.checkSummaryWarnings()  # as the project does with the runs it loads
        return "\n".join(pick.summary())

    def test_a_model_that_looks_imported_from_the_published_set(self):
        published = tiny_model(self.folder / "published.pt", source=f"{PUBLISHED_SOURCE_PREFIX} ribo.pth")
        summary = self.summaryWith(published)
        self.assertEqual(summary.count("this published DeePiCt network"), 1, summary)
        self.assertIn("deepict equalize", summary.split("*WARNINGS:*")[1])
        self.assertIn("The model is a published DeePiCt network without a reference spectrum: see WARNINGS.",
                      summary.split("*WARNINGS:*")[0])
        self.assertNotIn("published DeePiCt network", self.summaryWith(tiny_model(self.folder / "ours.pt")))

    def test_the_published_ribosome_network(self):
        checkpoint = PUBLISHED / "ribosomeModel.pth"
        if not checkpoint.is_file():
            self.skipTest(f"{checkpoint} is not available")
        self.assertIn("spectrum-matched", self.summaryWith(checkpoint, voxelSize=VOXEL))


class TestSummaryWarnsAboutAFilledMap(BaseTest):
    """A network whose map lies above the threshold nearly everywhere gives one pick over the whole tomogram, or
    over the whole of an intersected context mask, or a segmentation of all of it: the summary says so, as the log
    does. With test-time rotations, pick keeps the calibrated threshold there instead."""

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

    def launch(self, protocolClass=ProtDeepictPick, **parameters):
        """Run the protocol; (it, its summary as the project window shows it, its log)."""
        parameters = {"inputModel": self.model.deepictModel, **parameters}
        protocol = self.newProtocol(protocolClass, inputTomograms=self.tomograms.Tomograms, window=32, **parameters)
        self.launchProtocol(protocol)
        log = "".join(Path(path).read_text() for path in protocol.getLogPaths() if Path(path).is_file())
        # what the project does with every run it loads
        run = self.proj.getProtocol(protocol.getObjId())
        run.checkSummaryWarnings()
        return protocol, run, "\n".join(run.summary()), log

    def test_a_threshold_that_joins_the_map_into_one_cluster(self):
        pick, run, summary, log = self.launch(threshold=0.4)
        self.assertEqual(getattr(pick, pick.OUTPUT_PREFIX).getSize(), 1)
        self.assertIn("warning: at threshold 0.4 one cluster covers 100 % of the tomogram", log)
        self.assertTrue(run.hasSummaryWarnings())
        self.assertIn("*WARNINGS:*\nat threshold 0.4 one cluster covers 100 % of the tomogram", summary)
        self.assertIn("or train longer [pick_noise]", summary)
        self.assertIn("'Probability threshold'", summary)

    def test_a_threshold_that_joins_an_intersected_context_into_one_cluster(self):
        pick, run, summary, log = self.launch(threshold=0.4, contextMasks=self.context.tomomasks,
                                              contextMode=CONTEXT_MODES.index("intersection"))
        self.assertEqual(getattr(pick, pick.OUTPUT_PREFIX).getSize(), 1)
        self.assertIn("warning: at threshold 0.4 one cluster covers 100 % of the context mask", log)
        self.assertIn("at threshold 0.4 one cluster covers 100 % of the context mask", summary)

    def test_rotations_keep_the_calibrated_threshold_there(self):
        pick, run, summary, log = self.launch(testTimeRotations=True)
        self.assertIn("clustering at the model's calibrated threshold 0.5 instead", log)
        self.assertEqual(getattr(pick, pick.OUTPUT_PREFIX).getSize(), 0)
        self.assertNotIn("one cluster covers", summary)
        self.assertFalse(run.hasSummaryWarnings())

    def test_a_published_network_is_warned_of_once_after_its_run(self):
        # before the run the summary warns itself; after it, the engine's copy among the run warnings replaces that
        published = tiny_model(Path(self.proj.getTmpPath("data")).resolve() / "published.pt", probability=0.3,
                               source=f"{PUBLISHED_SOURCE_PREFIX} ribo.pth")
        imported = self.newProtocol(ProtDeepictImportModel, modelFile=str(published))
        self.launchProtocol(imported)
        # The import warns already: a GUI user saw nothing until a pick found almost nothing.
        importRun = self.proj.getProtocol(imported.getObjId())
        importRun.checkSummaryWarnings()
        self.assertTrue(importRun.hasSummaryWarnings())
        self.assertIn("model.pt: this published DeePiCt network", "\n".join(importRun.summary()))
        pick, run, summary, log = self.launch(inputModel=imported.deepictModel)
        self.assertIn("model.pt: this published DeePiCt network", log)
        self.assertTrue(run.hasSummaryWarnings())
        self.assertEqual(summary.count("this published DeePiCt network"), 1, summary)
        self.assertIn("/extra/model.pt: this published DeePiCt network", summary.split("*WARNINGS:*")[1])
        self.assertNotIn("Warning: this published", summary)

    def test_a_segmentation_of_the_whole_tomogram(self):
        # the model records no share of its training labels (as imported ones): more than half is suspect
        segment, run, summary, log = self.launch(ProtDeepictSegment3D, threshold=0.4)
        self.assertIn("warning: at threshold 0.4 the segmentation covers 100 % of the tomogram", log)
        self.assertIn("*WARNINGS:*\nat threshold 0.4 the segmentation covers 100 % of the tomogram", summary)
        self.assertIn("[segment3d_noise]", summary)
        # at a threshold above the map: nothing segmented, nothing to warn of
        segment, run, summary, log = self.launch(ProtDeepictSegment3D, threshold=0.5)
        self.assertFalse(run.hasSummaryWarnings(), summary)

    def test_many_warnings_are_listed_once_each_and_counted_beyond_ten(self):
        # 12 messages: one given by 7 jobs (5 named, the rest counted), 11 by one job each
        from deepict.job_warnings import recording_warnings
        pick, run, summary, log = self.launch()
        extra = Path(pick._getExtraPath())
        for index in range(7):
            with recording_warnings(extra / f"pick_t{index}.json"):
                print("warning: shared by seven jobs")
        for index in range(11):
            with recording_warnings(extra / f"pick_u{index:02d}.json"):
                print(f"warning: message {index:02d}")
        run = self.proj.getProtocol(pick.getObjId())
        run.checkSummaryWarnings()
        run.checkSummaryWarnings()  # the project checks every time it loads its runs: no line twice
        lines = run.summaryWarnings
        self.assertEqual(len(lines), 11, lines)
        self.assertIn("shared by seven jobs [pick_t0, pick_t1, pick_t2, pick_t3, pick_t4 and 2 more]", lines)
        self.assertEqual(lines[-1], "... and 2 more warnings: see the log and extra/*.warnings.json")
