"""Coordinates written outside Scipion come in through the GUI: DeePiCt tables (``deepict pick`` output, annotations)
and RELION 4/5 particles STAR files. A GUI user could import neither (tomo reads txt and cbox; reliontomo's star import
is disabled with RELION 5)."""

import os

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject

from deepict.formats import PickedTomogram, TomogramInfo, export_coordinates
from deepict.io import CoordinateTable, write_coordinates
from deepict_scipion.convert import coordinatesByKey, tomogramsByKey
from deepict_scipion.protocols import ProtDeepictImportCoordinates, ProtDeepictTrain3D
from deepict_scipion.protocols.protocol_import_coordinates import FORMAT_STAR, FORMAT_TABLES
from deepict_scipion.tests.test_protocols_3d import VOXEL, importPhantoms


class TestImportCoordinates(BaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        importPhantoms(cls, 2)
        cls.tomos = tomogramsByKey(cls.importTomos.Tomograms)
        cls.tables = os.path.abspath(cls.proj.getTmpPath("tables"))
        os.makedirs(cls.tables)

    def importProtocol(self, path, fileFormat=FORMAT_TABLES, **kwargs):
        return self.newProtocol(ProtDeepictImportCoordinates, inputTomograms=self.importTomos.Tomograms,
                                filesPath=path, fileFormat=fileFormat, **kwargs)

    def imported(self, protocol):
        self.launchProtocol(protocol)
        self.lastImport = protocol
        return coordinatesByKey(protocol.outputCoordinates, self.importTomos.Tomograms)

    def test_deepict_tables_by_tsid_with_a_class_and_another_binning(self):
        # tomo0: a two-class pick table; tomo1: annotations at twice the voxel size (bin 2)
        truth0, truth1 = self.truth["tomo0"], self.truth["tomo1"]
        fas = truth0[:2] + 5
        write_coordinates(os.path.join(self.tables, "tomo0_picks.csv"),
                          CoordinateTable(np.vstack([truth0, fas]), {"score": np.linspace(0.5, 1, len(truth0) + 2),
                                          "class": ["ribosome"] * len(truth0) + ["fas"] * 2}, VOXEL))
        write_coordinates(os.path.join(self.tables, "tomo1_picks.csv"),
                          CoordinateTable((truth1 + 0.5) / 2 - 0.5, {"class": ["ribosome"] * len(truth1)}, 2 * VOXEL))
        write_coordinates(os.path.join(self.tables, "elsewhere.csv"), CoordinateTable(truth1, {}, VOXEL))
        got = self.imported(self.importProtocol(self.tables, filesPattern="*_picks.csv", className="ribosome"))
        np.testing.assert_allclose(np.sort(got["tomo0"], axis=0), np.sort(truth0, axis=0), atol=1e-3)
        np.testing.assert_allclose(np.sort(got["tomo1"], axis=0), np.sort(truth1, axis=0), atol=1e-3)
        count = len(truth0) + len(truth1)
        self.assertEqual(" ".join(self.lastImport._methods()),
                         f"{count} coordinates were imported from DeePiCt coordinate tables.")
        # The imported set trains as tomo's imports do.
        train = self.newProtocol(ProtDeepictTrain3D, inputTomograms=self.importTomos.Tomograms, classNames="ribosome",
                                 particleRadii="100", depth=1, initialFeatures=2, epochs=1, iterationsPerEpoch=1,
                                 batchSize=1, patchSize=32, valFraction=0.0)
        protocol = self.importProtocol(self.tables, filesPattern="*_picks.csv", className="ribosome")
        self.launchProtocol(protocol)
        train.inputCoordinates.append(protocol.outputCoordinates)
        self.assertEqual(train.validate(), [])

    def test_relion_star_files_come_back_where_they_were(self):
        infos = {key: TomogramInfo(key, tuple(int(v) for v in tomo.getDim()), VOXEL, tomo.getFileName())
                 for key, tomo in self.tomos.items()}
        picks = [PickedTomogram(infos[key], CoordinateTable(self.truth[key], {}, VOXEL)) for key in self.tomos]
        for name in ("relion4", "relion5"):  # told apart by their columns
            star = os.path.join(self.tables, f"particles_{name}.star")
            export_coordinates(name, star, picks, output_pixel_size=VOXEL / 4 if name == "relion4" else None)
            got = self.imported(self.importProtocol(star, FORMAT_STAR))
            for key in self.tomos:
                np.testing.assert_allclose(np.sort(got[key], axis=0), np.sort(self.truth[key], axis=0), atol=1e-3)

    def test_validate_names_the_fix(self):
        errors = " ".join(self.importProtocol(self.tables, filesPattern="nothing*.csv").validate())
        self.assertIn("is named after a tomogram: each file must start with a tsId", errors)
        self.assertIn("tomo0", errors)
        star = os.path.join(self.tables, "other.star")
        other = TomogramInfo("TS_99", (96, 96, 40), VOXEL, "/data/TS_99.mrc")
        export_coordinates("relion5", star, [PickedTomogram(other, CoordinateTable(self.truth["tomo0"], {}, VOXEL))])
        errors = " ".join(self.importProtocol(star, FORMAT_STAR).validate())
        self.assertIn("TS_99", errors)
        self.assertIn("tomo0", errors)
        self.assertIn("not found", " ".join(self.importProtocol("/no/such/file.star", FORMAT_STAR).validate()))
