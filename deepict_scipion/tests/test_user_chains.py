"""The chain a user runs: ``deepict pick`` -> ``deepict export`` -> RELION through Scipion's reliontomo.

Two small generated tomograms; a tiny 3D model trained for a few seconds on the first (it picks
something, which is all the chain needs); ``deepict pick`` on both (picks with class names, as a
user gets them); ``deepict export`` to every format; then the RELION 4 and RELION 5 files are imported
into a real headless Scipion project with reliontomo's own protocol "import 3D coordinates from a
star file" (``ProtImportCoordinates3DFromStar``, the one a user picks in the GUI; it needs only the
star file and the tomograms; its optional coordinates sampling rate left empty, as a user leaves it),
and the imported coordinates must equal the picks within 0.01 voxel.
The same round trip goes through ``ProtDeepictExport``: reliontomo's coordinates exported by our
protocol and imported again by reliontomo.
"""

import json
import os
import shutil
from contextlib import redirect_stdout
from io import StringIO

import numpy as np
import torch
from pwem import Domain
from pyworkflow.tests import BaseTest, setupTestProject
from tomo.protocols import ProtImportTomograms

from deepict_scipion.convert import coordinatesByKey
from deepict import formats as export
from deepict.cli.main import main
from deepict.io import read_coordinates
from deepict.synthetic import PhantomConfig, make_phantom, write_phantom
from deepict_scipion.protocols import ProtDeepictExport

VOXEL = 13.48
UNBINNED = 3.37  # the output pixel size a RELION user gives: the tilt series' (4x finer here)
TOLERANCE = 0.01  # voxels
NAMES = ("TS_01", "TS_02")
TRAIN = ["--class-name", "ribosome", "--radius", "4", "--epochs", "15", "--iterations-per-epoch", "4",
         "--patch-size", "16", "--depth", "1", "--initial-features", "4", "--batch-size", "2",
         "--learning-rate", "0.01", "--device", "cpu"]
PICK = ["--threshold", "0.5", "--min-size", "1", "--window", "32", "--margin", "4", "--batch-size", "4",
        "--device", "cpu"]
EXPORT_TARGETS = {"relion4": "particles_relion4.star", "relion5": "particles_relion5.star", "warp": "warp",
                  "dynamo": "particles.tbl", "motl": "motl"}


def reliontomoImportProtocol():
    """reliontomo's "import 3D coordinates from a star file", loaded as Scipion loads it.

    Registering the plugin first defines its variables (RELION 5 by default); a bare import of
    ``reliontomo.protocols`` fails on the undefined RELION version. The import runs no RELION program,
    but Scipion refuses to run a plugin's protocol while the plugin's home folder is missing: the
    test environment's (empty) RELION 5 folder stands in for an installed RELION.
    """
    plugin = Domain.getPluginModule("reliontomo").Plugin
    os.makedirs(plugin.getHome(), exist_ok=True)
    from reliontomo.protocols import ProtImportCoordinates3DFromStar
    return ProtImportCoordinates3DFromStar


def run(args):
    """Run a ``deepict`` command in this process; fail the test with its arguments if it fails."""
    code = main(args)
    assert code == 0, f"deepict {' '.join(args)} exited with {code}"


class TestPickExportRelionChain(BaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a tiny network on a shared machine
        cls.root = os.path.abspath(cls.proj.getTmpPath("chain"))
        tomograms = os.path.join(cls.root, "tomograms")
        cls.files = {}
        for seed, name in enumerate(NAMES, start=2):
            phantom = make_phantom(PhantomConfig(shape_zyx=(32, 48, 48), seed=seed, n_ribosomes=5, n_fas=1,
                                                 n_distractors=2, n_vesicles=1, n_sheets=0))
            cls.files[name] = write_phantom(phantom, os.path.join(cls.root, "phantoms"), name)
            os.makedirs(tomograms, exist_ok=True)  # the tomograms alone, for Scipion's import
            shutil.copy(cls.files[name]["tomogram"], tomograms)
        cls.model = os.path.join(cls.root, "ribosome.pt")
        run(["train3d", "--tomograms", cls.files["TS_01"]["tomogram"], "--coords", cls.files["TS_01"]["ribosome"],
             "--out", cls.model] + TRAIN)
        cls.picks = {}
        for name in NAMES:
            out = os.path.join(cls.root, "picks", f"{name}.csv")
            run(["pick", "--model", cls.model, "--tomogram", cls.files[name]["tomogram"], "--out", out] + PICK)
            cls.picks[name] = out
        cls.tomograms = cls._importTomograms(tomograms)

    @classmethod
    def tearDownClass(cls):
        torch.set_num_threads(cls.threads)

    @classmethod
    def _importTomograms(cls, folder):
        prot = cls.newProtocol(ProtImportTomograms, filesPath=folder, filesPattern="TS_*.mrc", samplingRate=VOXEL)
        cls.launchProtocol(prot)
        return prot.Tomograms

    def _pickedTables(self):
        return {name: read_coordinates(path) for name, path in self.picks.items()}

    def _export(self, fmt, outputPixelSize=None):
        """``deepict export`` of both tomograms' picks; returns the output path and the printed summary."""
        out = os.path.join(self.root, "export", str(outputPixelSize), EXPORT_TARGETS[fmt])
        args = ["export", "--coords", *self.picks.values(), "--tomogram",
                *(self.files[name]["tomogram"] for name in NAMES), "--format", fmt, "--out", out]
        if outputPixelSize is not None:
            args += ["--output-pixel-size", str(outputPixelSize)]
        printed = StringIO()
        with redirect_stdout(printed):
            run(args)
        return out, json.loads(printed.getvalue())

    def _importStar(self, starFile, samplingRate=None):
        """reliontomo's own import of a coordinates star file onto the imported tomograms."""
        importProtocol = reliontomoImportProtocol()
        prot = self.newProtocol(importProtocol, starFile=starFile, inTomos=self.tomograms,
                                samplingRate=samplingRate, boxSize=16)
        self.launchProtocol(prot)
        coordinates = getattr(prot, importProtocol._possibleOutputs.coordinates.name)
        self.assertAlmostEqual(coordinates.getSamplingRate(), VOXEL)
        return coordinates

    def _assertSamePositions(self, coordinates, what):
        """The Scipion coordinates equal the picks within 0.01 voxel (matched by tsId, order kept)."""
        imported = coordinatesByKey(coordinates)
        picked = self._pickedTables()
        self.assertEqual(sorted(imported), sorted(picked), what)
        for name, table in picked.items():
            self.assertEqual(len(imported[name]), len(table), f"{what}: {name}")
            error = np.abs(imported[name] - table.xyz).max()
            self.assertLess(error, TOLERANCE, f"{what}: {name} is {error:.4f} voxel off")

    # ------------------------------------------------------------------------------------------
    def test_picks_are_real(self):
        for name, table in self._pickedTables().items():
            self.assertGreaterEqual(len(table), 2, f"the model picked too little in {name}")
            self.assertEqual(set(table.columns["class"]), {"ribosome"})
            self.assertFalse(np.allclose(table.xyz, np.round(table.xyz)), "centroids should be fractional")

    def test_every_format_exports_the_picks_with_their_class_name(self):
        tomograms = [export.TomogramInfo.from_volume(self.files[name]["tomogram"]) for name in NAMES]
        for fmt in export.FORMATS:
            pixelSize = None if fmt == "dynamo" else UNBINNED  # Dynamo's .doc points at the tomograms
            out, summary = self._export(fmt, pixelSize)
            self.assertEqual(summary["particles"], sum(len(t) for t in self._pickedTables().values()))
            back = export.read_exported(fmt, out, tomograms, output_pixel_size=pixelSize)
            for tomogram, table in zip(tomograms, back):
                original = self._pickedTables()[tomogram.name]
                self.assertLess(np.abs(table.xyz - original.xyz).max(), TOLERANCE, f"{fmt}: {tomogram.name}")
            if fmt == "warp":
                self.assertIsNone(summary["classes"])
            else:
                self.assertEqual(summary["classes"], {"ribosome": 1}, fmt)
                self.assertEqual(export.read_class_map(export.class_map_path(out)), {"ribosome": 1})
                for table in back:
                    self.assertEqual(set(table.columns["class"].tolist()), {1}, fmt)

    def test_relion4_round_trip_through_reliontomo_import(self):
        star, _ = self._export("relion4", UNBINNED)
        # the import form's coordinates sampling rate left empty, as it invites: the file gives it
        self._assertSamePositions(self._importStar(star), "RELION 4 at 3.37 Å")
        self._assertSamePositions(self._importStar(star, samplingRate=UNBINNED), "RELION 4 at 3.37 Å, rate given")
        star, _ = self._export("relion4")
        self._assertSamePositions(self._importStar(star), "RELION 4 at the tomograms' voxel size")

    def test_relion5_round_trip_through_reliontomo_import(self):
        star, _ = self._export("relion5", UNBINNED)
        imported = self._importStar(star)
        self.assertTrue(getattr(imported, "_relion5Picking").get(), "reliontomo did not read the file as RELION 5")
        self._assertSamePositions(imported, "RELION 5 at 3.37 Å")
        star, _ = self._export("relion5")
        self._assertSamePositions(self._importStar(star), "RELION 5 at the tomograms' voxel size")

    def test_protocol_export_round_trips_through_reliontomo_import(self):
        star, _ = self._export("relion4")
        coordinates = self._importStar(star)
        prot = self.newProtocol(ProtDeepictExport, inputCoordinates=coordinates, outputPixelSize=UNBINNED,
                                exportWarp=False, exportMotl=False)
        self.launchProtocol(prot)
        for fmt in ("relion4", "relion5"):
            self._assertSamePositions(self._importStar(prot.exportTarget(fmt)), f"ProtDeepictExport {fmt}")
        tables = export.read_exported("dynamo", prot.exportTarget("dynamo"),
                                      [export.TomogramInfo.from_volume(self.files[n]["tomogram"]) for n in NAMES])
        for name, table in zip(NAMES, tables):
            self.assertLess(np.abs(table.xyz - self._pickedTables()[name].xyz).max(), TOLERANCE, f"dynamo {name}")
