"""The 3D protocols in a real (headless) Scipion project: import -> train -> pick / segment / import model.

Data are small synthetic phantoms written on the fly; every protocol runs in its own subprocess
exactly as from the GUI, calling the ``deepict`` command through runJob.
"""

import json
import os
import sys
from pathlib import Path
from unittest import mock

import numpy as np
from pyworkflow.object import Pointer
from pyworkflow.protocol.constants import STATUS_FAILED, STATUS_FINISHED
from pyworkflow.tests import BaseTest, setupTestProject
from tomo.constants import BOTTOM_LEFT_CORNER
from tomo.protocols import ProtImportCoordinates3D, ProtImportTomograms, ProtImportTomomasks

from deepict_scipion.convert import coordinatesByKey, tomogramsByKey
from deepict.infer.rescale import resample_array, rescaled_shape
from deepict.io import read_volume, write_volume
from deepict.nn.model_files import read_model_info
from deepict.synthetic import PhantomConfig, make_phantom
from deepict_scipion.protocols import (ProtDeepictImportModel, ProtDeepictPick, ProtDeepictSegment3D,
                                       ProtDeepictTrain3D)

VOXEL = 13.48
SHAPE = (40, 96, 96)
PUBLISHED = Path(__file__).resolve().parents[3] / "shared" / "models" / "published" / "ribosomeModel.pth"
TINY_TRAINING = dict(depth=2, initialFeatures=4, epochs=2, iterationsPerEpoch=3, batchSize=2, patchSize=32,
                     valFraction=0.0)


def writeTomograms(folder, count, voxel=VOXEL):
    """Phantom tomograms, their ribosome coordinates as txt (x y z per line) and membrane masks."""
    os.makedirs(folder, exist_ok=True)
    truth = {}
    for index in range(count):
        phantom = make_phantom(PhantomConfig(shape_zyx=SHAPE, n_ribosomes=10, n_fas=2, n_distractors=4,
                                             n_organelles=0, n_vesicles=1, seed=index))
        name = f"tomo{index}"
        write_volume(os.path.join(folder, f"{name}.mrc"), phantom.tomogram, voxel)
        np.savetxt(os.path.join(folder, f"{name}.txt"), phantom.coords["ribosome"], fmt="%.2f")
        masks = os.path.join(folder, "masks")
        os.makedirs(masks, exist_ok=True)
        write_volume(os.path.join(masks, f"{name}.mrc"), phantom.masks["membrane"], voxel)
        truth[name] = phantom.coords["ribosome"]
    return truth


def importPhantoms(case, count, write=writeTomograms):
    """Write ``count`` phantoms with ``write(folder, count)`` (tomo*.mrc and their ribosomes, tomo*.txt) to the test
    project's tmp/data and import them into it as tomograms and ribosome coordinates (box 24) from ``case``, a
    BaseTest class: sets its ``dataDir``, ``truth`` (what ``write`` returns), ``importTomos`` and ``importCoords``."""
    case.dataDir = os.path.abspath(case.proj.getTmpPath("data"))
    case.truth = write(case.dataDir, count)
    case.importTomos = case.newProtocol(ProtImportTomograms, filesPath=case.dataDir, filesPattern="tomo*.mrc",
                                        samplingRate=VOXEL)
    case.launchProtocol(case.importTomos)
    case.importCoords = case.newProtocol(ProtImportCoordinates3D, filesPath=case.dataDir, filesPattern="tomo*.txt",
                                         importTomograms=case.importTomos.Tomograms, boxSize=24)
    case.launchProtocol(case.importCoords)


class TestDeepict3DProtocols(BaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        importPhantoms(cls, 2)
        cls.train = cls.newProtocol(ProtDeepictTrain3D, inputTomograms=cls.importTomos.Tomograms,
                                    classNames="ribosome", particleRadii="100", **TINY_TRAINING)
        cls.train.inputCoordinates.append(cls.importCoords.outputCoordinates)
        cls.launchProtocol(cls.train)

    def test_train_outputs_a_described_model(self):
        model = self.train.deepictModel
        self.assertTrue(os.path.exists(model.getFileName()))
        self.assertEqual(model.getKind(), "3d")
        self.assertEqual(model.getClasses(), ["ribosome"])
        self.assertAlmostEqual(model.getVoxelSize(), VOXEL, places=2)
        self.assertAlmostEqual(model.getRadiusAngstrom("ribosome"), 100.0, places=3)
        self.assertTrue(os.path.exists(self.train._getExtraPath("model.pt.last.pt")), "resumable state missing")
        # Two epochs: the model is the weight average of the second, that is its weights, and the summary says so.
        self.assertIn("Model (weight averaging): the weights of epoch 2", " ".join(self.train.summary()))
        self.assertIn("2 epochs, final loss", " ".join(self.train.summary()))

    def test_pick_gives_coordinates_inside_their_tomograms(self):
        pick = self.newProtocol(ProtDeepictPick, inputTomograms=self.importTomos.Tomograms,
                                inputModel=self.train.deepictModel, threshold=0.05, minSize=1,
                                keepProbabilityMaps=True, binThreads=1, testTimeRotations=True)
        self.launchProtocol(pick)
        # The methods text says how the maps were predicted, for the paper's methods section.
        self.assertIn("averaged over four rotations about z", " ".join(pick.methods()))
        log = "".join(open(path).read() for path in pick.getLogPaths()[:2])
        self.assertNotIn("Cannot get information about MPI/threads", log)
        self.assertIn("binary Threads: 1", log)
        coords = getattr(pick, pick.OUTPUT_PREFIX)
        self.assertAlmostEqual(coords.getSamplingRate(), VOXEL, places=2)
        self.assertEqual(coords.getBoxSize(), 22)  # 3 x 100 Å / 13.48 Å, even
        self.assertGreater(coords.getSize(), 0, "a threshold of 0.05 must yield clusters")
        tomos = [t.clone() for t in coords.getPrecedents().iterItems()]
        self.assertEqual(len(tomos), 2)
        for tomo in tomos:
            for coord in coords.iterCoordinates(volume=tomo):
                x, y, z = coord.getPosition(BOTTOM_LEFT_CORNER)
                self.assertTrue(0 <= x < SHAPE[2] and 0 <= y < SHAPE[1] and 0 <= z < SHAPE[0])
                self.assertTrue(0 < coord.getScore() <= 1)
        self.assertEqual(pick.probabilityMaps.getSize(), 2)
        # the kept maps have no getSummary(): tomo's picking summary became that AttributeError alone
        summary = "\n".join(pick.summary())
        # and what the maps are: not just "2 maps"
        self.assertIn(f"*probabilityMaps:*\nThe network's probability maps of class '{pick._className()}' (before "
                      "thresholding), one per tomogram (2 maps): output 'probabilityMaps'", summary)
        self.assertIn(f"Class '{pick._className()}' picked with", summary)
        probability = read_volume(pick.probabilityMaps.getFirstItem().getFileName())
        self.assertEqual(probability.data.shape, SHAPE)
        self.assertAlmostEqual(probability.voxel_size, VOXEL, places=2)

    def test_test_time_mirrors_and_rotations_reach_the_job(self):
        """The advanced checkboxes (off by default) turn on the engine's mirrored and rotated prediction."""
        for protocolClass in (ProtDeepictPick, ProtDeepictSegment3D):
            for mirrors, rotations in ((False, False), (True, False), (False, True), (True, True)):
                checked = {"testTimeMirrors": True} if mirrors else {}
                checked.update({"testTimeRotations": True} if rotations else {})
                protocol = self.newProtocol(protocolClass, inputTomograms=self.importTomos.Tomograms,
                                            inputModel=self.train.deepictModel, **checked)
                protocol.tomos = tomogramsByKey(protocol.inputTomograms.get())
                job = protocol._inferenceJob(next(iter(protocol.tomos)), None)
                self.assertEqual((job.inference.test_time_mirrors, job.inference.test_time_rotations),
                                 (mirrors, rotations), protocolClass.__name__)

    def test_picks_round_trip_through_scipion_coordinates(self):
        """The engine's BOTTOM_LEFT voxels survive Scipion's origin-relative storage unchanged."""
        byKey = coordinatesByKey(self.importCoords.outputCoordinates)
        for name, xyz in self.truth.items():
            key = next(k for k in byKey if k.endswith(name))
            np.testing.assert_allclose(np.sort(byKey[key], axis=0), np.sort(xyz, axis=0), atol=0.01)

    def test_segment3d_gives_masks_with_voxel_size(self):
        segment = self.newProtocol(ProtDeepictSegment3D, inputTomograms=self.importTomos.Tomograms,
                                   inputModel=self.train.deepictModel, threshold=0.05, minSize=1)
        self.launchProtocol(segment)
        self.assertEqual(segment.segmentations.getSize(), 2)
        for mask in segment.segmentations.iterItems():
            volume = read_volume(mask.getFileName())
            self.assertEqual(volume.data.shape, SHAPE)
            self.assertAlmostEqual(volume.voxel_size, VOXEL, places=2)
            self.assertTrue(set(np.unique(volume.data)) <= {0, 1})
            self.assertTrue(os.path.exists(mask.getVolName()))

    def test_import_our_model_file(self):
        imported = self.newProtocol(ProtDeepictImportModel, modelFile=os.path.abspath(
            self.train.deepictModel.getFileName()))
        self.launchProtocol(imported)
        self.assertEqual(imported.deepictModel.getClasses(), ["ribosome"])
        self.assertAlmostEqual(imported.deepictModel.getVoxelSize(), VOXEL, places=2)
        # a voxel size for a model that records its own: refused by the form, before the engine refuses it
        path = os.path.abspath(self.train.deepictModel.getFileName())
        other = self.newProtocol(ProtDeepictImportModel, modelFile=path, voxelSize=10.0)
        self.assertIn(f"records its own, {VOXEL:g} Å: leave the field empty", " ".join(other.validate()))
        same = self.newProtocol(ProtDeepictImportModel, modelFile=path, voxelSize=VOXEL)
        self.assertEqual(same.validate(), [])

    def test_import_published_checkpoint_and_pick(self):
        if not PUBLISHED.exists():
            self.skipTest("published DeePiCt checkpoints not available")
        imported = self.newProtocol(ProtDeepictImportModel, modelFile=str(PUBLISHED), voxelSize=VOXEL)
        self.launchProtocol(imported)
        self.assertEqual(imported.deepictModel.getClasses(), ["ribo"])
        pick = self.newProtocol(ProtDeepictPick, inputTomograms=self.importTomos.Tomograms,
                                inputModel=imported.deepictModel)
        self.launchProtocol(pick)
        self.assertIsNotNone(getattr(pick, pick.OUTPUT_PREFIX))
        # Imported with the voxel size mistyped (1.348 Å): the refusal also names that cause, not only the tomograms.
        mistyped = self.newProtocol(ProtDeepictImportModel, modelFile=str(PUBLISHED), voxelSize=VOXEL / 10)
        self.launchProtocol(mistyped)
        pick = self.newProtocol(ProtDeepictPick, inputTomograms=self.importTomos.Tomograms,
                                inputModel=mistyped.deepictModel)
        self.assertTrue(any("more than the 4x" in e and "typed at its import" in e for e in pick.validate()),
                        pick.validate())

    def test_train_on_structure_masks(self):
        masks = self.newProtocol(ProtImportTomomasks, filesPath=os.path.abspath(os.path.join(self.dataDir, "masks")),
                                 filesPattern="tomo*.mrc", inputTomos=self.importTomos.Tomograms)
        self.launchProtocol(masks)
        train = self.newProtocol(ProtDeepictTrain3D, inputTomograms=self.importTomos.Tomograms, labelSource=1,
                                 classNames="membrane", **TINY_TRAINING)
        train.inputMasks.append(masks.tomomasks)
        # The form's switches reach the engine: the best epoch is kept, no hard negatives are looked for.
        train.weightAveraging.set(False)
        train.hardNegatives.set(False)
        self.launchProtocol(train)
        self.assertEqual(train.deepictModel.getClasses(), ["membrane"])
        self.assertNotIn("mean of the weights", " ".join(train.summary()))
        training = read_model_info(train.deepictModel.getFileName()).training
        self.assertIs(training["hard_negatives"], False)
        self.assertIs(training["weight_averaging"], False)

    # ------------------------------------ _validate ------------------------------------
    def test_pick_rescales_tomograms_at_another_voxel_size(self):
        """A model at 13.48 Å picks tomograms at 10 Å; the coordinates are registered at 10 Å, in their voxels."""
        folder = os.path.abspath(self.proj.getTmpPath("at10"))
        os.makedirs(folder, exist_ok=True)
        native = read_volume(os.path.join(os.path.abspath(self.dataDir), "tomo0.mrc"))
        shape = rescaled_shape(native.data.shape, VOXEL / 10.0)
        write_volume(os.path.join(folder, "tomo0.mrc"), resample_array(native.data, shape), 10.0)
        other = self.newProtocol(ProtImportTomograms, filesPath=folder, filesPattern="tomo0.mrc", samplingRate=10.0)
        self.launchProtocol(other)
        pick = self.newProtocol(ProtDeepictPick, inputTomograms=other.Tomograms, inputModel=self.train.deepictModel,
                                threshold=0.05, minSize=1, keepProbabilityMaps=True)
        self.assertEqual(pick.validate(), [])
        self.assertTrue(any("rescaled to the model's 13.48" in line for line in pick.summary()), pick.summary())
        self.launchProtocol(pick)
        log = "".join(open(path).read() for path in pick.getLogPaths()[:2])
        self.assertIn("from 10 Å to the model's 13.48 Å", log)
        coords = getattr(pick, pick.OUTPUT_PREFIX)
        self.assertAlmostEqual(coords.getSamplingRate(), 10.0, places=2)
        self.assertGreater(coords.getSize(), 0)
        tomo = coords.getPrecedents().getFirstItem().clone()
        for coord in coords.iterCoordinates(volume=tomo):
            x, y, z = coord.getPosition(BOTTOM_LEFT_CORNER)
            self.assertTrue(0 <= x < shape[2] and 0 <= y < shape[1] and 0 <= z < shape[0], (x, y, z))
        probability = read_volume(pick.probabilityMaps.getFirstItem().getFileName())
        self.assertEqual(probability.data.shape, shape)
        self.assertAlmostEqual(probability.voxel_size, 10.0, places=2)
        self.assertAlmostEqual(pick.probabilityMaps.getSamplingRate(), 10.0, places=2)

    def test_validate_refuses_a_rescale_beyond_4x(self):
        other = self.newProtocol(ProtImportTomograms, filesPath=os.path.abspath(self.dataDir),
                                 filesPattern="tomo0.mrc", samplingRate=VOXEL / 5)
        self.launchProtocol(other)
        pick = self.newProtocol(ProtDeepictPick, inputTomograms=other.Tomograms, inputModel=self.train.deepictModel)
        errors = pick.validate()
        self.assertTrue(any("trained at 13.48" in e and "more than the 4x" in e for e in errors), errors)
        self.assertNotIn("typed at its import", " ".join(errors))  # a trained model records its own

    def test_validate_refuses_mismatched_coordinates_and_bad_parameters(self):
        other = self.newProtocol(ProtImportTomograms, filesPath=os.path.abspath(self.dataDir),
                                 filesPattern="tomo0.mrc", samplingRate=VOXEL * 2)
        self.launchProtocol(other)
        train = self.newProtocol(ProtDeepictTrain3D, inputTomograms=other.Tomograms, classNames="a, b",
                                 particleRadii="100", patchSize=30, depth=2)
        train.inputCoordinates.append(self.importCoords.outputCoordinates)
        errors = " ".join(train.validate())
        self.assertIn("1 coordinate set(s) but 2 class name(s)", errors)
        self.assertIn("Å/px but the tomograms", errors)
        self.assertIn("not among the input tomograms", errors)
        self.assertIn("divisible by 2^depth", errors)
        # class names follow the engine's one rule: a space was accepted; a repeated name was said twice
        for names, said in (("ribosome, large ribo", "class name 'large ribo' may hold only letters"),
                            ("ribosome, ribosome", "class names must be unique")):
            named = self.newProtocol(ProtDeepictTrain3D, inputTomograms=self.importTomos.Tomograms, classNames=names)
            for _ in range(2):
                named.inputCoordinates.append(self.importCoords.outputCoordinates)
            errors = named.validate()
            self.assertEqual(len([e for e in errors if said in e]), 1, errors)
            self.assertEqual(len([e for e in errors if "class name" in e.lower()]), 1, errors)
        # a radius below one voxel labels nothing (5 Å at 13.48 Å/voxel was accepted)
        tiny = self.newProtocol(ProtDeepictTrain3D, inputTomograms=self.importTomos.Tomograms, particleRadii="5")
        tiny.inputCoordinates.append(self.importCoords.outputCoordinates)
        self.assertIn(f"5 Å is less than a voxel ({VOXEL:.2f} Å)", " ".join(tiny.validate()))

    def test_validate_refuses_2d_model_class_and_missing_file(self):
        pick = self.newProtocol(ProtDeepictPick, inputTomograms=self.importTomos.Tomograms,
                                inputModel=self.train.deepictModel, className="fas")
        self.assertTrue(any("no class 'fas'" in e for e in pick.validate()))
        # no model: said once, in pyworkflow's words (its own check and ours used to give two messages)
        modelLabel = ProtDeepictPick().getParam("inputModel").label.get()
        self.assertEqual(self.newProtocol(ProtDeepictPick, inputTomograms=self.importTomos.Tomograms).validate(),
                         [f"*{modelLabel}* cannot be EMPTY."])
        imported = self.newProtocol(ProtDeepictImportModel, modelFile="/nonexistent/model.pth")
        self.assertTrue(any("not found" in e for e in imported.validate()))

    def test_validate_refuses_post_processing_and_window_the_engine_refuses(self):
        """Depth-2 model: inference boxes must be divisible by 4; threshold in [0, 1); min size <= max size."""
        for protocolClass in (ProtDeepictPick, ProtDeepictSegment3D):
            def errors(**values):
                protocol = self.newProtocol(protocolClass, inputTomograms=self.importTomos.Tomograms,
                                            inputModel=self.train.deepictModel, **values)
                return " ".join(protocol.validate())
            self.assertEqual(errors(window=96, threshold=0.3, minSize=10, maxSize=50), "")
            self.assertIn("must be divisible by 2^depth = 4", errors(window=90))
            for threshold in (1.5, -1.0):
                self.assertIn("the threshold must be in [0, 1)", errors(threshold=threshold))
            # the model's stored values in words, not a Python dict
            self.assertRegex(errors(threshold=1.5), r"Fields left empty take the model's values: threshold [\d.]+, "
                                                     r"minimum size \d+ voxels")
            self.assertNotIn("{", errors(threshold=1.5))
            self.assertIn("maximum cluster size (10) is below the minimum (50)", errors(minSize=50, maxSize=10))

    def test_validate_import_model_reads_the_file(self):
        """A random torch file, a 2D model and a negative voxel size are refused before the run."""
        import torch

        from deepict.nn.model_files import ModelInfo, build_network, save_model
        folder = os.path.abspath(self.proj.getTmpPath("models"))
        os.makedirs(folder, exist_ok=True)
        randomFile = os.path.join(folder, "random.pt")
        torch.save({"weights": torch.zeros(3)}, randomFile)
        info2d = ModelInfo(kind="2d", classes=["cytosol"], voxel_size=VOXEL, patch_size=32, overlap=8,
                           architecture={"depth": 2, "initial_features": 2, "out_channels": 1})
        model2d = os.path.join(folder, "model2d.pt")
        save_model(model2d, build_network(info2d), info2d)
        ours = os.path.abspath(self.train.deepictModel.getFileName())
        cases = {randomFile: (None, "random.pt"), model2d: (None, "is a 2D model"), ours: (-13.48, "Voxel size")}
        for path, (voxelSize, expected) in cases.items():
            imported = self.newProtocol(ProtDeepictImportModel, modelFile=path, voxelSize=voxelSize)
            errors = imported.validate()
            self.assertEqual(len(errors), 1, errors)
            self.assertIn(expected, errors[0])
        self.assertEqual(self.newProtocol(ProtDeepictImportModel, modelFile=ours).validate(), [])
        # Where torch lives only in the engine's own environment, the form cannot read the file: the import
        # step (run by the engine) refuses it instead of the form failing on a missing torch.
        with mock.patch.dict(sys.modules, {"torch": None}):
            self.assertEqual(self.newProtocol(ProtDeepictImportModel, modelFile=randomFile).validate(), [])

    def test_failed_job_reports_the_engine_error(self):
        """A job the engine refuses fails with its one-line error, not 'returned non-zero exit status 2'."""
        imported = self.newProtocol(ProtDeepictImportModel, modelFile=os.path.abspath(
            self.train.deepictModel.getFileName()))
        self.launchProtocol(imported)
        damaged = os.path.abspath(imported.deepictModel.getFileName())
        with open(damaged, "wb") as handle:  # damaged after import: only the engine can notice
            handle.write(b"not a model")
        pick = self.newProtocol(ProtDeepictPick, inputTomograms=self.importTomos.Tomograms,
                                inputModel=imported.deepictModel)
        self.proj.launchProtocol(pick, wait=True)
        self.assertTrue(pick.isFailed())
        message = pick.getErrorMessage()
        self.assertIn(f"deepict pick: error: {damaged}: ", message)
        self.assertNotIn("\n", message.strip())
        self.assertNotIn("non-zero exit status", message)

    def test_a_failed_tomogram_fails_alone(self):
        """The tomograms after a broken one still run; the protocol then fails naming every broken one (the
        last of them ran last), and "continue" (after the fix) redoes only the broken ones."""
        folder = os.path.abspath(self.proj.getTmpPath("with_broken"))
        os.makedirs(folder)
        good = sorted(Path(self.dataDir).glob("tomo*.mrc"))
        os.symlink(os.path.abspath(good[0]), os.path.join(folder, "a.mrc"))
        os.symlink(os.path.abspath(good[1]), os.path.join(folder, "c.mrc"))
        broken = [os.path.join(folder, name) for name in ("b.mrc", "d.mrc")]
        for path in broken:
            with open(good[0], "rb") as source, open(path, "wb") as handle:
                handle.write(source.read(1024 + 4096))  # a valid header, the data cut short
        tomos = self.newProtocol(ProtImportTomograms, filesPath=folder, filesPattern="*.mrc", samplingRate=VOXEL)
        self.launchProtocol(tomos)
        pick = self.newProtocol(ProtDeepictPick, inputTomograms=tomos.Tomograms, inputModel=self.train.deepictModel,
                                threshold=0.05, minSize=1, numberOfThreads=1)  # one tomogram after the other
        self.proj.launchProtocol(pick, wait=True)
        pick = self.proj.getProtocol(pick.getObjId())
        self.assertTrue(pick.isFailed())
        message = pick.getErrorMessage()
        self.assertIn("2 steps failed: deepict pick: error:", message)
        self.assertIn("b.mrc", message)
        self.assertIn("d.mrc", message)
        steps = {json.loads(step.argsStr.get())[0]: step.getStatus() for step in pick.loadSteps()
                 if step.funcName.get() == "inferenceStep"}
        self.assertEqual(sorted(steps.values()), [STATUS_FAILED] * 2 + [STATUS_FINISHED] * 2, steps)
        for step in pick.loadSteps():  # each failed step keeps its own error, naming its own tomogram
            if step.isFailed():
                self.assertEqual(sum(os.path.basename(path) in step.getErrorMessage() for path in broken), 1,
                                 step.getErrorMessage())
        for key, status in steps.items():
            self.assertEqual(os.path.exists(pick._outputPath(key)), status == STATUS_FINISHED, key)

        for path in broken:
            os.remove(path)
            os.symlink(os.path.abspath(good[0]), path)
        done = {key: os.path.getmtime(pick._outputPath(key)) for key, status in steps.items()
                if status == STATUS_FINISHED}
        self.proj.launchProtocol(pick, wait=True)  # "continue": Scipion's default run mode resumes
        pick = self.proj.getProtocol(pick.getObjId())
        self.assertEqual(pick.getStatus(), STATUS_FINISHED, pick.getErrorMessage())
        self.assertEqual({key: os.path.getmtime(pick._outputPath(key)) for key in done}, done, "redone")
        self.assertEqual(getattr(pick, pick.OUTPUT_PREFIX).getPrecedents().getSize(), 4)

    def _pickMtimes(self, pick):
        return {key: os.path.getmtime(pick._outputPath(key)) for key in tomogramsByKey(pick.inputTomograms.get())}

    def test_continue_reruns_the_steps_whose_parameters_changed(self):
        """Continue compares each step's arguments: nothing changed reruns nothing; a new threshold reruns every
        tomogram and the output (it said "All steps seem to be FINISHED" and kept the old picks)."""
        pick = self.newProtocol(ProtDeepictPick, inputTomograms=self.importTomos.Tomograms,
                                inputModel=self.train.deepictModel, threshold=0.05, minSize=1, numberOfThreads=1)
        self.launchProtocol(pick)
        before, count = self._pickMtimes(pick), getattr(pick, pick.OUTPUT_PREFIX).getSize()
        self.assertGreater(count, 0)

        self.proj.launchProtocol(pick, wait=True)  # "continue": Scipion's default run mode resumes
        pick = self.proj.getProtocol(pick.getObjId())
        self.assertEqual(pick.getStatus(), STATUS_FINISHED, pick.getErrorMessage())
        self.assertEqual(self._pickMtimes(pick), before, "nothing changed, yet a tomogram was picked again")

        pick.threshold.set(0.999)
        self.proj.launchProtocol(pick, wait=True)
        pick = self.proj.getProtocol(pick.getObjId())
        self.assertEqual(pick.getStatus(), STATUS_FINISHED, pick.getErrorMessage())
        after = self._pickMtimes(pick)
        self.assertTrue(all(after[key] != before[key] for key in before), "the new threshold did not rerun the picks")
        for key in before:
            job = json.load(open(pick._getExtraPath(f"{pick._inferenceJobName(key)}.json")))
            self.assertEqual(job["postprocess"]["threshold"], 0.999)
        self.assertLess(getattr(pick, pick.OUTPUT_PREFIX).getSize(), count, "the output kept the old threshold's picks")
        pick.testTimeRotations.set(True)  # changed in the form, not run: the methods describe the jobs that ran
        self.assertNotIn("averaged over four rotations", " ".join(pick.methods()))

    def test_continue_resumes_or_retrains_a_changed_training(self):
        """Continue after the form changed: more epochs resume from the last finished one; a new radius (other
        labels, which the engine's resume does not check) trains afresh, and the methods say what ran. On the CPU
        (useGpu off), so that the device the run gives the job is not taken for a change of the form."""
        train = self.newProtocol(ProtDeepictTrain3D, inputTomograms=self.importTomos.Tomograms,
                                 classNames="ribosome", particleRadii="100", numberOfThreads=1, useGpu=False,
                                 **dict(TINY_TRAINING, epochs=1))
        train.inputCoordinates.append(self.importCoords.outputCoordinates)
        self.launchProtocol(train)

        def proceed(**changes):
            for name, value in changes.items():
                getattr(train, name).set(value)
            self.proj.launchProtocol(train, wait=True)  # "continue": Scipion's default run mode resumes
            ran = self.proj.getProtocol(train.getObjId())
            self.assertEqual(ran.getStatus(), STATUS_FINISHED, ran.getErrorMessage())
            return ran, open(ran.getLogPaths()[0]).read()

        train, log = proceed(epochs=2)
        self.assertIn("Resuming the training from its last finished epoch: training.epochs changed.", log)
        self.assertEqual(len(train._existingInfo()["history"]), 2)

        train, log = proceed(particleRadii="80")
        self.assertIn("Training from scratch: radius changed since the last run", log)
        self.assertAlmostEqual(train.deepictModel.getRadiusAngstrom("ribosome"), 80.0, places=3)
        self.assertIn("spheres of radius 80 Å", " ".join(train.methods()))

        train.particleRadii.set("60")  # changed in the form, not run: the methods describe the training that ran
        self.assertIn("spheres of radius 80 Å", " ".join(train.methods()))


class TestTrain3DInputs(BaseTest):
    """What train 3D reads of its inputs before training (no training runs)."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        importPhantoms(cls, 2)

    def test_coordinates_are_matched_to_the_input_tomograms_not_to_their_precedents(self):
        """In a scheduled copy of a template the coordinates' precedents pointer (an id) names another object
        (a LegacyProtocol, without iterItems): training read it and failed in convertInputStep."""
        coordinates = self.importCoords.outputCoordinates
        precedents = coordinates._precedentsPointer.get()
        self.addCleanup(coordinates._precedentsPointer.set, precedents)
        coordinates._precedentsPointer.set(self.importCoords)  # an object that is no set of tomograms
        train = self.newProtocol(ProtDeepictTrain3D, inputTomograms=self.importTomos.Tomograms,
                                 classNames="ribosome", particleRadii="100", **TINY_TRAINING)
        train.inputCoordinates.append(Pointer(self.importCoords, extended="outputCoordinates"))
        self.assertEqual(train._labelledKeys(), ["tomo0", "tomo1"])

    def _trainOn(self, pointer):
        train = self.newProtocol(ProtDeepictTrain3D, inputTomograms=self.importTomos.Tomograms,
                                 classNames="ribosome", particleRadii="100", **TINY_TRAINING)
        train.inputCoordinates.append(pointer)
        return train

    def test_validate_says_whether_a_coordinate_set_is_not_there_yet_missing_or_empty(self):
        """Both were "Coordinate set 1 is empty.", which says nothing of what to do."""
        notRun = self.newProtocol(ProtImportCoordinates3D, filesPath=self.dataDir, filesPattern="tomo*.txt",
                                  importTomograms=self.importTomos.Tomograms, boxSize=24)
        self.proj.saveProtocol(notRun)
        errors = self._trainOn(Pointer(notRun, extended="outputCoordinates")).validate()
        self.assertIn(f"Coordinate set 1 is not there yet: run '{notRun.getRunName()}' first.", errors)
        lost = self._trainOn(Pointer(self.importTomos, extended="outputCoordinates")).validate()
        self.assertIn("Coordinate set 1 is missing: choose it again.", lost)
        self.assertNotIn("Coordinate set", " ".join(
            self._trainOn(Pointer(self.importCoords, extended="outputCoordinates")).validate()))
