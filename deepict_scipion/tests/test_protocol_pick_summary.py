"""The pick protocol's summary warns about published networks, for models imported in a real project."""

from __future__ import annotations

from pathlib import Path

from pyworkflow.tests import BaseTest, setupTestProject

from deepict.nn.model_files import KIND_3D, PUBLISHED_SOURCE_PREFIX, ModelInfo, build_network, save_model
from deepict_scipion.protocols import ProtDeepictImportModel, ProtDeepictPick

PUBLISHED = Path(__file__).resolve().parents[3] / "shared" / "models" / "published"
VOXEL = 13.48


def tiny_model(path: Path, source: str | None = None) -> Path:
    """An untrained 3D model file, optionally marked as imported from ``source``."""
    info = ModelInfo(kind=KIND_3D, classes=["ribosome"], voxel_size=VOXEL, patch_size=16, overlap=4,
                     architecture={"depth": 1, "initial_features": 2, "out_channels": 1, "batch_norm": False},
                     **({"source": source} if source else {}))
    save_model(path, build_network(info), info)
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
