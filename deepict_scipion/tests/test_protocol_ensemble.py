"""The ensemble protocol in a real (headless) Scipion project: two trainings -> combined -> picked with.

As a user would: the same training run twice with another seed, the two networks combined (calibrated on
their training tomograms, or at the networks' median), and the ensemble picked with like any network.
"""

import os

from pyworkflow.tests import BaseTest, setupTestProject
from tomo.protocols import ProtImportCoordinates3D, ProtImportTomograms

from deepict.nn.model_files import ENSEMBLE_MEMBERS, POSTPROCESS_CALIBRATION, read_model_info
from deepict_scipion.protocols import ProtDeepictEnsemble, ProtDeepictPick, ProtDeepictTrain3D
from deepict_scipion.tests.test_protocols_3d import TINY_TRAINING, VOXEL, writeTomograms

#: The tiny training with validation slabs, which the ensemble's calibration predicts.
TRAINING = dict(TINY_TRAINING, valFraction=0.2)


class TestEnsembleProtocol(BaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        data = os.path.abspath(cls.proj.getTmpPath("data"))
        writeTomograms(data, 2)
        cls.tomograms = cls.newProtocol(ProtImportTomograms, filesPath=data, filesPattern="tomo*.mrc",
                                        samplingRate=VOXEL)
        cls.launchProtocol(cls.tomograms)
        cls.coordinates = cls.newProtocol(ProtImportCoordinates3D, filesPath=data, filesPattern="tomo*.txt",
                                          importTomograms=cls.tomograms.Tomograms, boxSize=24)
        cls.launchProtocol(cls.coordinates)
        cls.trainings = []
        for seed in (0, 1):
            training = cls.newProtocol(ProtDeepictTrain3D, inputTomograms=cls.tomograms.Tomograms,
                                       classNames="ribosome", particleRadii="100", seed=seed, **TRAINING)
            training.inputCoordinates.append(cls.coordinates.outputCoordinates)
            cls.launchProtocol(training)
            cls.trainings.append(training)

    def _ensemble(self, **values):
        ensemble = self.newProtocol(ProtDeepictEnsemble, **values)
        for training in self.trainings:
            ensemble.inputModels.append(training.deepictModel)
        return ensemble

    def test_calibrated_ensemble_is_a_model_that_pick_uses(self):
        ensemble = self._ensemble(inputTomograms=self.tomograms.Tomograms,
                                  inputCoordinates=self.coordinates.outputCoordinates)
        self.launchProtocol(ensemble)
        model = ensemble.deepictModel
        self.assertEqual(model.getMemberCount(), 2)
        self.assertIn("ensemble of 2", str(model))
        self.assertEqual(model.getClasses(), ["ribosome"])
        info = read_model_info(model.getFileName())
        self.assertEqual([m["file"] for m in info.training[ENSEMBLE_MEMBERS]],
                         [os.path.abspath(t.deepictModel.getFileName()) for t in self.trainings])
        self.assertIn(POSTPROCESS_CALIBRATION, info.training)
        summary = " ".join(ensemble.summary())
        # two runs of one training bear one name: their run ids and seeds tell them apart
        first, second = self.trainings
        self.assertIn(f"Ensemble of 2 networks: {first.getRunName()} (run {first.getObjId()}, seed 0); "
                      f"{second.getRunName()} (run {second.getObjId()}, seed 1).", summary)
        self.assertIn(f"{first.getObjId():06d}_ProtDeepictTrain3D/extra/model.pt (seed 0)", model.getSource())
        self.assertIn("calibrated on the training tomograms", summary)
        self.assertIn("were averaged voxel by voxel (an ensemble). Its threshold", " ".join(ensemble.methods()))
        # the training-curves viewer draws the networks' trainings (the ensemble itself was not trained)
        from deepict_scipion.viewers import DeepictTrainingViewer
        viewer = DeepictTrainingViewer(project=self.proj)
        histories = viewer.modelHistory(model)
        self.assertEqual(list(histories), ["network 1 (seed 0)", "network 2 (seed 1)"])
        self.assertEqual([len(h) for h in histories.values()], [TRAINING["epochs"]] * 2)
        png = viewer.trainingCurvesPng(model, self.proj.getTmpPath("ensemble_curves.png"))
        self.assertGreater(os.path.getsize(png), 1000)

        pick = self.newProtocol(ProtDeepictPick, inputTomograms=self.tomograms.Tomograms, inputModel=model,
                                threshold=0.05, minSize=1, binThreads=1)
        self.launchProtocol(pick)
        self.assertGreater(getattr(pick, pick.OUTPUT_PREFIX).getSize(), 0)
        self.assertIn("with an ensemble of 2 DeePiCt 3D U-Nets", " ".join(pick.methods()))

    def test_without_calibration_the_ensemble_takes_the_networks_median(self):
        ensemble = self._ensemble(calibrate=False)
        self.launchProtocol(ensemble)
        info = read_model_info(ensemble.deepictModel.getFileName())
        self.assertNotIn(POSTPROCESS_CALIBRATION, info.training)
        members = [read_model_info(t.deepictModel.getFileName()).postprocess for t in self.trainings]
        self.assertEqual(info.postprocess["min_size"],
                         round((members[0]["min_size"] + members[1]["min_size"]) / 2))
        self.assertIn("the networks' median", " ".join(ensemble.summary()))

    def test_the_form_refuses_what_cannot_be_combined_or_calibrated(self):
        one = self.newProtocol(ProtDeepictEnsemble, calibrate=False)
        one.inputModels.append(self.trainings[0].deepictModel)
        self.assertIn("Select two or more 3D networks", " ".join(one.validate()))
        uncalibrated = self._ensemble()
        self.assertIn("Give the networks' training tomograms and coordinates", " ".join(uncalibrated.validate()))
        self.assertEqual(self._ensemble(calibrate=False).validate(), [])

    def test_the_form_refuses_to_calibrate_networks_with_other_validation_slabs(self):
        other = self.newProtocol(ProtDeepictTrain3D, inputTomograms=self.tomograms.Tomograms, classNames="ribosome",
                                 particleRadii="100", **dict(TRAINING, valFraction=0.3))
        other.inputCoordinates.append(self.coordinates.outputCoordinates)
        self.launchProtocol(other)
        self.assertEqual(other.deepictModel.getValidationSplit(), {"val_fraction": 0.3, "patch_size": 32})
        ensemble = self._ensemble(inputTomograms=self.tomograms.Tomograms,
                                  inputCoordinates=self.coordinates.outputCoordinates)
        ensemble.inputModels.append(other.deepictModel)
        self.assertIn("Network 3 kept other validation slabs than network 1 (validation fraction 0.3 and box 32 "
                      "against 0.2 and 32)", " ".join(ensemble.validate()))
        ensemble.calibrate.set(False)
        self.assertEqual(ensemble.validate(), [])
