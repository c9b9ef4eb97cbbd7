"""Export, evaluation and viewers in a real (headless) Scipion project.

Small synthetic tomograms and hand-made coordinates (imported with tomo's own importer, no network
is trained): export to every format and read back with the engine's readers, tomo's export protocol
on the same coordinates, evaluation of picks and masks, the viewers' PNGs, and _validate.
"""

import json
import os
import shutil

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject
from tomo.objects import Coordinate3D, SetOfCoordinates3D, SetOfTomoMasks, SetOfTomograms, TomoMask, Tomogram
from tomo.constants import BOTTOM_LEFT_CORNER
from tomo.protocols import ProtExportCoordinates3D, ProtImportCoordinates3D, ProtImportTomograms, \
    ProtImportTomomasks

from deepict_scipion.convert import coordinatesByKey
from deepict.formats import FORMATS, TomogramInfo, read_exported
from deepict.io import write_volume
from deepict_scipion.objects import DeepictModel
from deepict_scipion.protocols import ProtDeepictEvaluate, ProtDeepictExport
from deepict_scipion.protocols.protocol_evaluate import MODE_VOXELS
from deepict_scipion.protocols.protocol_export import EXPORT_FORMATS
from deepict_scipion.viewers import plots
from deepict_scipion.viewers.viewers import (DeepictEvaluationViewer, DeepictPicksViewer, DeepictTrainingViewer,
                                             PngView)

VOXEL = 10.0
SHAPE = (40, 96, 96)  # z, y, x
UNBINNED = 2.5  # output pixel size of the export: 4x "unbinned"
NAMES = ("tomo0", "tomo1")


def _separatedPoints(rng, count, minDistance=25.0, margin=6):
    points = []
    while len(points) < count:
        p = np.array([rng.uniform(margin, SHAPE[2] - margin), rng.uniform(margin, SHAPE[1] - margin),
                      rng.uniform(margin, SHAPE[0] - margin)])
        if all(np.linalg.norm(p - q) >= minDistance for q in points):
            points.append(np.round(p, 1))  # 1 decimal: halving stays exact in the 2-decimal txt files
    return np.array(points)


def _farPoint(rng, points, distance=20.0, margin=6):
    while True:
        p = np.round(np.array([rng.uniform(margin, SHAPE[2] - margin), rng.uniform(margin, SHAPE[1] - margin),
                               rng.uniform(margin, SHAPE[0] - margin)]), 1)
        if np.min(np.linalg.norm(points - p, axis=1)) > distance:
            return p


def _sphereMask(points, radius):
    z, y, x = np.indices(SHAPE)
    mask = np.zeros(SHAPE, dtype=np.int8)
    for px, py, pz in points:
        mask[(x - px) ** 2 + (y - py) ** 2 + (z - pz) ** 2 <= radius ** 2] = 1
    return mask


def writeData(root):
    """Tomograms, truth / picks / half-scale truth txt files, truth masks, predicted masks, probability maps."""
    rng = np.random.default_rng(5)
    folders = {name: os.path.join(root, name) for name in ("tomos", "truth", "picks", "truth_bin2", "gt_masks",
                                                           "pred_masks", "prob_maps")}
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
    truth, picks, expected = {}, {}, {}
    for index, name in enumerate(NAMES):
        points = _separatedPoints(rng, 6)
        gtMask = _sphereMask(points, 4)
        tomogram = rng.normal(0, 1, SHAPE).astype(np.float32) - 2.0 * gtMask
        write_volume(os.path.join(folders["tomos"], f"{name}.mrc"), tomogram, VOXEL)
        np.savetxt(os.path.join(folders["truth"], f"{name}.txt"), points, fmt="%.2f")
        np.savetxt(os.path.join(folders["truth_bin2"], f"{name}.txt"), points / 2.0, fmt="%.2f")
        picked = points.copy()
        if index == 0:  # 4 found (2 of them 2 voxels off), 2 missed, 1 false pick: TP 4, FP 1, FN 2
            picked = np.vstack([points[:2], points[2:4] + [2.0, 0.0, 0.0], _farPoint(rng, points)])
            expected[name] = (4, 1, 2)
        else:  # 5 exact, 1 moved 20 voxels away: TP 5, FP 1, FN 1
            picked[5] = _farPoint(rng, points)
            expected[name] = (5, 1, 1)
        np.savetxt(os.path.join(folders["picks"], f"{name}.txt"), picked, fmt="%.2f")
        predMask = gtMask.copy()
        predMask[:, :, :48] = 0  # half of the spheres missed, plus one false sphere
        predMask |= _sphereMask(_farPoint(rng, points)[None], 3)
        write_volume(os.path.join(folders["gt_masks"], f"{name}.mrc"), gtMask, VOXEL)
        write_volume(os.path.join(folders["pred_masks"], f"{name}.mrc"), predMask, VOXEL)
        probability = np.clip(0.5 * gtMask + rng.uniform(0, 0.6, SHAPE), 0, 1).astype(np.float32)
        write_volume(os.path.join(folders["prob_maps"], f"{name}.mrc"), probability, VOXEL)
        truth[name], picks[name] = points, picked
    return folders, truth, expected


class TestDeepictExportEvaluate(BaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.root = os.path.abspath(cls.proj.getTmpPath("data"))
        cls.folders, cls.truth, cls.expected = writeData(cls.root)
        cls.tomos = cls._importTomograms(VOXEL)
        cls.truthCoords = cls._importCoordinates("truth", cls.tomos)
        cls.pickCoords = cls._importCoordinates("picks", cls.tomos)

    @classmethod
    def _importTomograms(cls, voxel):
        prot = cls.newProtocol(ProtImportTomograms, filesPath=cls.folders["tomos"], filesPattern="tomo*.mrc",
                               samplingRate=voxel)
        cls.launchProtocol(prot)
        return prot.Tomograms

    @classmethod
    def _importCoordinates(cls, folder, tomograms):
        prot = cls.newProtocol(ProtImportCoordinates3D, filesPath=cls.folders[folder], filesPattern="tomo*.txt",
                               importTomograms=tomograms, boxSize=24)
        cls.launchProtocol(prot)
        return prot.outputCoordinates

    def _tomogramInfos(self):
        return [TomogramInfo(name=name, shape=SHAPE[::-1], voxel_size=VOXEL,
                             path=os.path.join(self.folders["tomos"], f"{name}.mrc")) for name in NAMES]

    # ------------------------------------ export ------------------------------------
    def test_export_every_format_round_trips_with_rescaling(self):
        export = self.newProtocol(ProtDeepictExport, inputCoordinates=self.truthCoords, outputPixelSize=UNBINNED,
                                  numberOfThreads=3)
        self.launchProtocol(export)
        stored = coordinatesByKey(self.truthCoords)  # what Scipion holds, BOTTOM_LEFT voxels
        self.assertEqual(sorted(stored), list(NAMES))
        tomograms = self._tomogramInfos()
        for fmt in FORMATS:
            out = export.exportTarget(fmt)
            self.assertTrue(os.path.exists(out), f"{fmt}: {out} missing")
            # Dynamo's .doc points at the tomograms, so its .tbl stays in their voxels
            tables = read_exported(fmt, out, tomograms, output_pixel_size=None if fmt == "dynamo" else UNBINNED)
            for tomogram, table in zip(tomograms, tables):
                np.testing.assert_allclose(table.xyz, stored[tomogram.name], atol=0.01,
                                           err_msg=f"{fmt} round trip of {tomogram.name}")
                np.testing.assert_array_equal(table.column("class"), 1)
        # the files really are in unbinned pixels, named by tsId
        with open(export.exportTarget("relion4")) as handle:
            self.assertIn("tomo0", handle.read())
        warp = read_exported("warp", export.exportTarget("warp"), tomograms)  # read at the tomogram's voxels
        np.testing.assert_allclose(warp[0].xyz, stored["tomo0"] * VOXEL / UNBINNED, atol=0.01)
        self.assertTrue(os.path.exists(os.path.join(export.exportTarget("warp"), "tomo1.star")))
        self.assertTrue(os.path.exists(export.exportTarget("dynamo").replace(".tbl", ".doc")))
        summary = "\n".join(export.summary())
        for name in ("particles_relion4.star", "particles_relion5.star", "particles.tbl", "particles.doc",
                     "tomo0.star", "tomo1.csv"):
            self.assertIn(name, summary)
        self.assertIn("2.5 Å/pixel", summary)

    def test_continue_reruns_an_export_whose_form_changed(self):
        """A protocol whose steps name no inputs: its first step depends on the whole form, so Continue reruns
        nothing when nothing changed and everything after a change (it said "All steps seem to be FINISHED")."""
        export = self.newProtocol(ProtDeepictExport, inputCoordinates=self.truthCoords, outputPixelSize=UNBINNED,
                                  **{param: fmt == "relion4" for fmt, (_, param) in EXPORT_FORMATS.items()})
        self.launchProtocol(export)
        target = export.exportTarget("relion4")
        before = os.path.getmtime(target)

        def proceed():
            self.proj.launchProtocol(export, wait=True)  # "continue": Scipion's default run mode resumes
            ran = self.proj.getProtocol(export.getObjId())
            self.assertTrue(ran.isFinished(), ran.getErrorMessage())
            return os.path.getmtime(target)

        self.assertEqual(proceed(), before, "nothing changed, yet the export ran again")
        export.outputPixelSize.set(VOXEL)
        self.assertNotEqual(proceed(), before, "the new pixel size did not rerun the export")
        with open(export._getExtraPath("export_relion4.json")) as handle:
            self.assertEqual(json.load(handle)["output_pixel_size"], VOXEL)

    def test_export_defaults_to_the_coordinates_sampling_rate(self):
        export = self.newProtocol(ProtDeepictExport, inputCoordinates=self.truthCoords)
        self.assertEqual(export.outputPixelSizeValue(), VOXEL)
        manifest = [{"coords": "a.csv", "tomogram": "a.mrc", "tsId": "TS_1", "voxel_size": VOXEL}]
        job = export.exportJob("relion4", manifest)
        self.assertEqual(job.output_pixel_size, VOXEL)
        self.assertEqual(job.tomo_name, ["TS_1"])
        self.assertEqual(job.voxel_size, VOXEL)
        export = self.newProtocol(ProtDeepictExport, inputCoordinates=self.truthCoords, outputPixelSize=UNBINNED)
        self.assertEqual(export.exportJob("relion4", manifest).output_pixel_size, UNBINNED)
        self.assertIsNone(export.exportJob("dynamo", manifest).output_pixel_size)

    def test_tomo_export_protocol_accepts_the_coordinates(self):
        choices = ProtExportCoordinates3D._getExportChoices()
        tomoExport = self.newProtocol(ProtExportCoordinates3D, inputCoordinates=self.pickCoords,
                                      outputFormat=choices.index("txt"))
        self.launchProtocol(tomoExport)
        stored = coordinatesByKey(self.pickCoords)
        for name in NAMES:
            exported = os.path.join(tomoExport._getExportPath(), f"{name}.txt")
            self.assertTrue(os.path.exists(exported), os.listdir(tomoExport._getExportPath()))
            written = np.loadtxt(exported, ndmin=2)
            np.testing.assert_array_equal(np.sort(written, axis=0), np.sort(np.trunc(stored[name]), axis=0))

    # ------------------------------------ evaluate ------------------------------------
    def _evaluate(self, picks, truth, **kwargs):
        prot = self.newProtocol(ProtDeepictEvaluate, inputCoordinates=picks, groundTruthCoordinates=truth,
                                numberOfThreads=2, **kwargs)
        self.launchProtocol(prot)
        evaluation = prot.loadEvaluation()
        self.assertIsNotNone(evaluation)
        return prot, evaluation

    def test_evaluate_perfect_picks_against_rescaled_truth(self):
        """picks == truth gives F1 = 1, with the truth given at twice the voxel size (rescaled x2)."""
        truthBin2 = self._importCoordinates("truth_bin2", self._importTomograms(2 * VOXEL))
        self.assertAlmostEqual(truthBin2.getSamplingRate(), 2 * VOXEL)
        prot, evaluation = self._evaluate(self.truthCoords, truthBin2)
        self.assertAlmostEqual(evaluation["ground_truth_scale"], 2.0)
        self.assertEqual(sorted(evaluation["tomograms"]), list(NAMES))
        for result in list(evaluation["tomograms"].values()) + [evaluation["overall"]]:
            self.assertEqual(result["f1"], 1.0)
            self.assertEqual(result["fp"] + result["fn"], 0)
        self.assertEqual(evaluation["overall"]["auprc"], 1.0)
        self.assertAlmostEqual(prot.overallF1.get(), 1.0)
        self.assertIn("rescaled x2", "\n".join(prot.summary()))

    def test_evaluate_perturbed_picks(self):
        prot, evaluation = self._evaluate(self.pickCoords, self.truthCoords, radius=10)
        tp, fp, fn = (sum(e[i] for e in self.expected.values()) for i in range(3))
        for name, (etp, efp, efn) in self.expected.items():
            result = evaluation["tomograms"][name]
            self.assertEqual((result["tp"], result["fp"], result["fn"]), (etp, efp, efn), name)
        overall = evaluation["overall"]
        self.assertEqual((overall["tp"], overall["fp"], overall["fn"]), (tp, fp, fn))
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        self.assertAlmostEqual(overall["f1"], 2 * precision * recall / (precision + recall))
        self.assertLess(overall["f1"], 1.0)
        self.assertAlmostEqual(overall["fbeta"], 17 * precision * recall / (16 * precision + recall))  # CZII's beta 4
        self.assertAlmostEqual(prot.overallFbeta.get(), overall["fbeta"])
        self.assertLess(overall["auprc"], 1.0)
        for name in NAMES:
            self.assertTrue(os.path.exists(prot.curvePath(name)))
        self.assertTrue(os.path.exists(prot.overallCurvePath()))
        summary = "\n".join(prot.summary())
        self.assertIn("OVERALL", summary)
        self.assertIn(f"F1 {overall['f1']:.3f}, F4 {overall['fbeta']:.3f}", summary)
        self.assertEqual(evaluation["radius"], 10)
        # viewer: PR curves + F1 table as PNG, without a display
        viewer = DeepictEvaluationViewer(project=self.proj, protocol=prot)
        png = viewer.evaluationPng(prot, os.path.join(self.root, "evaluation.png"))
        self.assertGreater(os.path.getsize(png), 1000)
        rows = viewer.evaluationTable(evaluation)
        self.assertEqual(rows[-1][0], "overall")
        self.assertEqual(len(rows), 2 + len(NAMES))

    def test_evaluate_masks_and_probability_maps(self):
        imports = {}
        for folder in ("gt_masks", "pred_masks", "prob_maps"):
            prot = self.newProtocol(ProtImportTomomasks, filesPath=self.folders[folder], filesPattern="tomo*.mrc",
                                    inputTomos=self.tomos)
            self.launchProtocol(prot)
            imports[folder] = prot.tomomasks
        prot = self.newProtocol(ProtDeepictEvaluate, evaluationMode=MODE_VOXELS, inputMasks=imports["pred_masks"],
                                inputProbabilityMaps=imports["prob_maps"], groundTruthMasks=imports["gt_masks"],
                                numberOfThreads=2)
        self.launchProtocol(prot)
        evaluation = prot.loadEvaluation()
        from deepict.io import read_volume
        tp = fp = fn = 0
        for name in NAMES:
            gt = read_volume(os.path.join(self.folders["gt_masks"], f"{name}.mrc")).data != 0
            pred = read_volume(os.path.join(self.folders["pred_masks"], f"{name}.mrc")).data != 0
            t, f, n = int((gt & pred).sum()), int((~gt & pred).sum()), int((gt & ~pred).sum())
            self.assertAlmostEqual(evaluation["tomograms"][name]["dice"], 2 * t / (2 * t + f + n), places=6)
            self.assertTrue(0.5 < evaluation["tomograms"][name]["auprc"] < 1.0)
            tp, fp, fn = tp + t, fp + f, fn + n
        self.assertAlmostEqual(evaluation["overall"]["f1"], 2 * tp / (2 * tp + fp + fn), places=6)
        self.assertLess(evaluation["overall"]["f1"], 1.0)
        self.assertIn("voxel F1", "\n".join(prot.summary()))
        png = DeepictEvaluationViewer(project=self.proj, protocol=prot).evaluationPng(
            prot, os.path.join(self.root, "voxels.png"))
        self.assertGreater(os.path.getsize(png), 1000)

    # ------------------------------------ viewers ------------------------------------
    def test_plots_and_viewers_write_pngs(self):
        out = os.path.join(self.root, "pngs")
        history = [{"epoch": e, "loss": 1.0 / e, "val_dice": 0.2 * e, "seconds": 1.0} for e in range(1, 5)]
        for png in (plots.plot_training_curves(history, os.path.join(out, "training.png")),
                    plots.plot_training_curves([{"epoch": 1, "loss": 0.5, "val_dice": None}],
                                               os.path.join(out, "training_noval.png")),
                    plots.plot_pr_curves({"a": {"recall": [0.5, 1.0], "precision": [1.0, 0.5]}},
                                         os.path.join(out, "pr.png"),
                                         table=[["tomogram", "F1"], ["a", 0.667]]),
                    plots.plot_slab(os.path.join(self.folders["tomos"], "tomo0.mrc"),
                                    {"ribosome": self.truth["tomo0"], "fas": self.truth["tomo0"][:2] + 1},
                                    os.path.join(out, "slab.png"), z=20,
                                    mask_path=os.path.join(self.folders["gt_masks"], "tomo0.mrc"))):
            self.assertTrue(png.endswith(".png"))
            self.assertGreater(os.path.getsize(png), 1000, png)
        # slab circles: a pick at z=20 shows with the full radius, one 30 voxels away does not
        x, y, r = plots.circles_at(np.array([[10, 10, 20], [30, 30, 50]]), z=20, radius=5, thickness=1)
        self.assertEqual(len(x), 1)
        self.assertAlmostEqual(r[0], 5.0)

        # picks viewer on a SetOfCoordinates3D: one PNG per tomogram
        picksViewer = DeepictPicksViewer(project=self.proj)
        pngs = picksViewer.slabPngs(self.pickCoords, os.path.join(out, "slabs"), z=10)
        self.assertEqual([os.path.basename(p) for p in pngs], [f"{n}_slab.png" for n in NAMES])
        self.assertTrue(all(os.path.getsize(p) > 1000 for p in pngs))
        items = picksViewer.slabItems(self.pickCoords)
        self.assertEqual(sum(len(v) for v in items[0]["picks"].values()), sum(self.expected["tomo0"][:2]))
        # the GUI views, drawn on pyworkflow's Plotter (Agg without a display): z and tomogram sliders work
        from pyworkflow.gui.plotter import Plotter
        Plotter.setBackend("Agg")
        browser, = picksViewer._visualize(self.pickCoords)
        browser.show()
        browser.sliders[1].set_val(1)  # second tomogram
        browser.sliders[0].set_val(3)
        self.assertEqual(int(browser.sliders[0].val), 3)
        PngView(pngs[0]).show()

        # training viewer: the history comes from the model_info.json beside the model file
        modelDir = os.path.join(self.root, "model")
        os.makedirs(modelDir, exist_ok=True)
        with open(os.path.join(modelDir, "model_info.json"), "w") as handle:
            json.dump({"kind": "3d", "classes": ["ribosome"], "voxel_size": VOXEL, "history": history}, handle)
        model = DeepictModel(filename=os.path.join(modelDir, "model.pt"))
        png = DeepictTrainingViewer(project=self.proj).trainingCurvesPng(model, os.path.join(out, "model.png"))
        self.assertGreater(os.path.getsize(png), 1000)
        # A weight-averaged model's own Dice is drawn beside the best epoch's (the plot showed only the best, 0.276,
        # the summary the model's 0.152); an imported network says why it has no history.
        from unittest import mock
        with open(os.path.join(modelDir, "model_info.json"), "w") as handle:
            json.dump({"kind": "3d", "classes": ["ribosome"], "voxel_size": VOXEL, "history": history,
                       "weight_average": {"first_epoch": 3, "last_epoch": 4, "val_dice": 0.152}}, handle)
        with mock.patch.object(plots, "plot_training_curves", wraps=plots.plot_training_curves) as plotted:
            DeepictTrainingViewer(project=self.proj).trainingCurvesPng(model, os.path.join(out, "model2.png"))
        self.assertEqual(plotted.call_args.kwargs["kept"], ("weight average of epochs 3-4", 0.152))
        from matplotlib.figure import Figure
        figure = Figure()
        plots.draw_training_curves(figure, history, kept=("weight average of epochs 3-4", 0.152))
        self.assertIn("model: 0.152 (weight average of epochs 3-4)", figure.axes[1].get_legend_handles_labels()[1])
        figure = Figure()
        plots.draw_training_curves(figure, [], no_history="no training history: imported")
        self.assertEqual([t.get_text() for t in figure.axes[0].texts], ["no training history: imported"])

        # Scipion finds the viewers for their targets
        from pwem import Domain
        from pyworkflow.viewer import DESKTOP_TKINTER
        for obj, viewer in ((model, DeepictTrainingViewer), (self.pickCoords, DeepictPicksViewer),
                            (ProtDeepictEvaluate(), DeepictEvaluationViewer)):
            self.assertIn(viewer, Domain.findViewers(obj, DESKTOP_TKINTER))

    # ------------------------------------ _validate ------------------------------------
    def _memorySet(self, name, tomograms, positions):
        """An unsaved-project SetOfCoordinates3D on ``tomograms`` with (tomogram, x, y, z) entries."""
        folder = os.path.join(self.root, name)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        coords = SetOfCoordinates3D.create(folder)
        coords.setPrecedents(tomograms)
        coords.setSamplingRate(VOXEL)
        coords.setBoxSize(24)
        for tomo, x, y, z in positions:
            coord = Coordinate3D()
            coord.setVolume(tomo)
            coord.setPosition(x, y, z, BOTTOM_LEFT_CORNER)
            coords.append(coord)
        coords.write()
        return coords

    def _memoryTomograms(self, name, files):
        folder = os.path.join(self.root, name)
        os.makedirs(folder, exist_ok=True)
        tomograms = SetOfTomograms.create(folder)
        tomograms.setSamplingRate(VOXEL)
        for path in files:
            tomo = Tomogram(location=path)
            tomo.setSamplingRate(VOXEL)
            tomo.setTsId(os.path.splitext(os.path.basename(path))[0])
            tomograms.append(tomo)
        tomograms.write()
        return tomograms

    def test_export_validate_errors(self):
        export = self.newProtocol(ProtDeepictExport, inputCoordinates=self.truthCoords, outputPixelSize=-1.0)
        self.assertTrue(any("must be > 0" in e for e in export.validate()), export.validate())
        export = self.newProtocol(ProtDeepictExport, inputCoordinates=self.truthCoords, outputPixelSize=0.0)
        self.assertTrue(any("must be > 0" in e for e in export.validate()))
        with self.assertRaisesRegex(ValueError, "Unknown export format 'xml'.*relion4"):
            export.exportTarget("xml")
        none = self.newProtocol(ProtDeepictExport, inputCoordinates=self.truthCoords, exportRelion4=False,
                                exportRelion5=False, exportWarp=False, exportDynamo=False, exportMotl=False)
        self.assertTrue(any("at least one export format" in e for e in none.validate()))

        # empty set
        gone = os.path.join(self.root, "gone")
        os.makedirs(gone, exist_ok=True)
        copy = os.path.join(gone, "ts_gone.mrc")
        shutil.copy(os.path.join(self.folders["tomos"], "tomo0.mrc"), copy)
        tomograms = self._memoryTomograms("gone_tomos", [copy])
        tomo = tomograms.getFirstItem().clone()
        empty = self._memorySet("empty", tomograms, [])
        export = self.newProtocol(ProtDeepictExport)
        export.inputCoordinates.set(empty)
        self.assertTrue(any("is empty" in e for e in export.validate()), export.validate())

        # coordinates whose tomogram is not among the precedents
        ghost = tomo.clone()
        ghost.setTsId("ghost")
        orphans = self._memorySet("orphans", tomograms, [(tomo, 10, 10, 10), (ghost, 20, 20, 20)])
        export.inputCoordinates.set(orphans)
        self.assertTrue(any("ghost" in e and "no tomogram" in e for e in export.validate()), export.validate())

        # tomogram file missing
        missing = self._memorySet("missing", tomograms, [(tomo, 10, 10, 10)])
        os.remove(copy)
        export.inputCoordinates.set(missing)
        self.assertTrue(any("not found" in e and "ts_gone" in e for e in export.validate()), export.validate())

    def test_evaluate_validate_errors(self):
        prot = self.newProtocol(ProtDeepictEvaluate, inputCoordinates=self.pickCoords,
                                groundTruthCoordinates=self.truthCoords, radius=0)
        self.assertTrue(any("radius must be > 0" in e for e in prot.validate()))
        # Scipion fills both fields with the selected run's output: the picks scored against themselves gave 1.0.
        prot = self.newProtocol(ProtDeepictEvaluate, inputCoordinates=self.pickCoords,
                                groundTruthCoordinates=self.pickCoords)
        self.assertTrue(any("the ground truth are the same set" in e for e in prot.validate()), prot.validate())
        prot = self.newProtocol(ProtDeepictEvaluate, inputCoordinates=self.pickCoords)
        label = prot.getParam("groundTruthCoordinates").label.get()
        self.assertIn(f"*{label}* cannot be EMPTY.", prot.validate())
        other = self._memoryTomograms("other_tomos", [os.path.join(self.folders["tomos"], "tomo1.mrc")])
        otherTomo = other.getFirstItem().clone()
        otherTomo.setTsId("elsewhere")
        elsewhere = self._memoryTomograms("elsewhere_tomos", [])
        elsewhere.append(otherTomo)
        elsewhere.write()
        unrelated = self._memorySet("unrelated", elsewhere, [(otherTomo, 10, 10, 10)])
        prot = self.newProtocol(ProtDeepictEvaluate, inputCoordinates=self.pickCoords)
        prot.groundTruthCoordinates.set(unrelated)
        self.assertTrue(any("No tomogram in common" in e for e in prot.validate()), prot.validate())

        masks = self.newProtocol(ProtDeepictEvaluate, evaluationMode=MODE_VOXELS)
        errors = " ".join(masks.validate())
        self.assertIn("*Ground-truth masks* cannot be EMPTY.", errors)
        self.assertIn("binary masks and/or probability maps", errors)
        folder = os.path.join(self.root, "mask_sets")
        os.makedirs(folder, exist_ok=True)
        sets = {}
        for voxel in (VOXEL, 2 * VOXEL):
            maskSet = SetOfTomoMasks.create(folder, suffix=str(int(voxel)))
            maskSet.setSamplingRate(voxel)
            mask = TomoMask(location=os.path.join(self.folders["gt_masks"], "tomo0.mrc"))
            mask.setSamplingRate(voxel)
            mask.setTsId("tomo0")
            maskSet.append(mask)
            maskSet.write()
            sets[voxel] = maskSet
        masks.groundTruthMasks.set(sets[VOXEL])
        masks.inputMasks.set(sets[2 * VOXEL])
        self.assertTrue(any("20.00 Å/voxel" in e and "resample" in e for e in masks.validate()), masks.validate())
