"""copick export and import protocols in a real (headless) Scipion project: export then import gives the same
coordinates; the import refuses a project without the asked picks."""

import json
import os

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject
from tomo.protocols import ProtImportCoordinates3D, ProtImportTomograms

from deepict.formats import copick
from deepict.io import write_volume
from deepict_scipion.convert import coordinatesByKey
from deepict_scipion.protocols import ProtDeepictCopickExport, ProtDeepictCopickImport

VOXEL = 10.0
SHAPE = (32, 64, 64)  # z, y, x
NAMES = ("TS_01", "TS_02")


class TestDeepictCopick(BaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        root = os.path.abspath(cls.proj.getTmpPath("data"))
        rng = np.random.default_rng(13)
        for folder in ("tomos", "coords"):
            os.makedirs(os.path.join(root, folder), exist_ok=True)
        for count, name in zip((5, 3), NAMES):
            write_volume(os.path.join(root, "tomos", f"{name}.mrc"), rng.normal(0, 1, SHAPE).astype(np.float32),
                         VOXEL)
            points = np.column_stack([rng.uniform(4, SHAPE[2] - 4, count), rng.uniform(4, SHAPE[1] - 4, count),
                                      rng.uniform(4, SHAPE[0] - 4, count)]).round(2)
            np.savetxt(os.path.join(root, "coords", f"{name}.txt"), points, fmt="%.2f")
        tomograms = cls.newProtocol(ProtImportTomograms, filesPath=os.path.join(root, "tomos"),
                                    filesPattern="TS_*.mrc", samplingRate=VOXEL)
        cls.launchProtocol(tomograms)
        cls.tomograms = tomograms.Tomograms
        coordinates = cls.newProtocol(ProtImportCoordinates3D, filesPath=os.path.join(root, "coords"),
                                      filesPattern="TS_*.txt", importTomograms=cls.tomograms, boxSize=24)
        cls.launchProtocol(coordinates)
        cls.coordinates = coordinates.outputCoordinates

    def test_export_then_import_gives_the_same_coordinates(self):
        export = self.newProtocol(ProtDeepictCopickExport, inputCoordinates=self.coordinates, objectName="ribosome",
                                  userId="scipion", sessionId="7")
        self.launchProtocol(export)
        config = export.projectPath()
        self.assertTrue(config.endswith(os.path.join("extra", "copick", copick.CONFIG_NAME)))
        self.assertEqual(export.exportedRuns(), list(NAMES))
        objects = json.loads(open(config).read())["pickable_objects"]
        self.assertEqual([(o["name"], o["radius"]) for o in objects], [("ribosome", 24 * VOXEL / 2)])
        self.assertIn("ribosome", "\n".join(export.summary()))

        imported = self.newProtocol(ProtDeepictCopickImport, inputTomograms=self.tomograms, copickProject=config,
                                    objectName="ribosome", userId="scipion", sessionId="7", boxSize=24)
        self.launchProtocol(imported)
        output = imported.outputCoordinates
        self.assertAlmostEqual(output.getSamplingRate(), VOXEL)
        before, after = coordinatesByKey(self.coordinates), coordinatesByKey(output)
        self.assertEqual(sorted(after), list(NAMES))
        for key in NAMES:
            np.testing.assert_allclose(after[key], before[key], atol=1e-6, err_msg=key)
        self.assertIn(f"{output.getSize()} picks of 'ribosome'", "\n".join(imported.summary()))

        wrong = self.newProtocol(ProtDeepictCopickImport, inputTomograms=self.tomograms, copickProject=config,
                                 objectName="ribosome", userId="someone", sessionId="7")
        self.assertIn("No run of", "\n".join(wrong.validate()))
        bad = self.newProtocol(ProtDeepictCopickExport, inputCoordinates=self.coordinates,
                               objectName="fatty_acid_synthase")
        self.assertIn("hyphen", "\n".join(bad.validate()))

    def test_an_export_with_the_forms_defaults_imports_back_with_the_forms_defaults(self):
        """The import form's object was 'ribosome' and the export's 'particle': a round trip left at the defaults
        found no picks."""
        export = self.newProtocol(ProtDeepictCopickExport, inputCoordinates=self.coordinates)
        self.launchProtocol(export)
        imported = self.newProtocol(ProtDeepictCopickImport, inputTomograms=self.tomograms,
                                    copickProject=export.projectPath())
        self.assertEqual(imported.validate(), [])
        self.launchProtocol(imported)
        self.assertEqual(imported.outputCoordinates.getSize(), self.coordinates.getSize())
        # the methods text, for a paper's methods section ("No methods information" before)
        self.assertIn("were imported from a copick project", " ".join(imported.methods()))
        self.assertIn("were exported as copick picks of 'particle'", " ".join(export.methods()))
        negative = self.newProtocol(ProtDeepictCopickExport, inputCoordinates=self.coordinates, radius=-1.0)
        self.assertIn("Particle radius: -1 Å is no radius", " ".join(negative.validate()))
        empty = self.newProtocol(ProtDeepictCopickImport, inputTomograms=self.tomograms)
        self.assertIn("*copick project* cannot be EMPTY", " ".join(empty.validate()))
