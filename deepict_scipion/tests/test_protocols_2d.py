"""2D compartment protocols in a real headless project, chained into 3D picking with a context mask."""

import os

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject
from tomo.constants import BOTTOM_LEFT_CORNER
from tomo.protocols import ProtImportCoordinates3D, ProtImportTomograms, ProtImportTomomasks

from deepict.io import read_volume, write_volume
from deepict.synthetic import PhantomConfig, make_phantom
from deepict_scipion.protocols import (ProtDeepictEvaluate, ProtDeepictFilterContext, ProtDeepictPick,
                                       ProtDeepictSegment2D, ProtDeepictTrain2D, ProtDeepictTrain3D)

VOXEL = 13.48
SHAPE = (32, 64, 64)


class TestDeepict2DProtocols(BaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        data = os.path.abspath(cls.proj.getTmpPath("data"))
        os.makedirs(os.path.join(data, "cytosol"))
        for index in range(2):
            phantom = make_phantom(PhantomConfig(shape_zyx=SHAPE, n_ribosomes=6, n_fas=1, n_distractors=2,
                                                 n_organelles=1, n_vesicles=1, seed=10 + index))
            write_volume(os.path.join(data, f"cell{index}.mrc"), phantom.tomogram, VOXEL)
            write_volume(os.path.join(data, "cytosol", f"cell{index}.mrc"), phantom.masks["cytosol"], VOXEL)
            np.savetxt(os.path.join(data, f"cell{index}.txt"), phantom.coords["ribosome"], fmt="%.2f")
        cls.tomos = cls.newProtocol(ProtImportTomograms, filesPath=data, filesPattern="cell*.mrc", samplingRate=VOXEL)
        cls.launchProtocol(cls.tomos)
        cls.masks = cls.newProtocol(ProtImportTomomasks, filesPath=os.path.join(data, "cytosol"),
                                    filesPattern="cell*.mrc", inputTomos=cls.tomos.Tomograms)
        cls.launchProtocol(cls.masks)
        cls.train2d = cls.newProtocol(ProtDeepictTrain2D, inputTomograms=cls.tomos.Tomograms,
                                      inputMasks=cls.masks.tomomasks, className="cytosol", epochs=1,
                                      tilesPerEpoch=4, tileSize=32, batchSize=2, zStride=8)
        cls.launchProtocol(cls.train2d)
        cls.segment2d = cls.newProtocol(ProtDeepictSegment2D, inputTomograms=cls.tomos.Tomograms,
                                        inputModel=cls.train2d.deepictModel, threshold=0.3)
        cls.launchProtocol(cls.segment2d)
        cls.coords = cls.newProtocol(ProtImportCoordinates3D, filesPath=data, filesPattern="cell*.txt",
                                     importTomograms=cls.tomos.Tomograms, boxSize=24)
        cls.launchProtocol(cls.coords)

    def test_train2d_outputs_a_2d_model(self):
        model = self.train2d.deepictModel
        self.assertEqual(model.getKind(), "2d")
        self.assertEqual(model.getClasses(), ["cytosol"])
        self.assertAlmostEqual(model.getVoxelSize(), VOXEL, places=2)

    def test_continue_resumes_or_retrains_a_changed_2d_training(self):
        """Continue after the form changed: more epochs resume; another tile size trains afresh (said in the log)."""
        train = self.newProtocol(ProtDeepictTrain2D, inputTomograms=self.tomos.Tomograms,
                                 inputMasks=self.masks.tomomasks, className="cytosol", epochs=1, tilesPerEpoch=4,
                                 tileSize=32, batchSize=2, zStride=8, numberOfThreads=1)
        self.launchProtocol(train)
        for name, value, said in (("epochs", 2, "Resuming the training from its last finished epoch: "
                                                "training.epochs changed."),
                                  ("tileSize", 16, "Training from scratch: training.tile_size changed")):
            getattr(train, name).set(value)
            self.proj.launchProtocol(train, wait=True)  # "continue": Scipion's default run mode resumes
            ran = self.proj.getProtocol(train.getObjId())
            self.assertTrue(ran.isFinished(), ran.getErrorMessage())
            self.assertIn(said, open(ran.getLogPaths()[0]).read())

    def test_segment2d_outputs_binary_masks_and_probability_maps(self):
        for name in ("segmentations", "probabilityMaps"):
            self.assertEqual(getattr(self.segment2d, name).getSize(), 2)
        for mask in self.segment2d.segmentations.iterItems():
            volume = read_volume(mask.getFileName())
            self.assertEqual(volume.data.shape, SHAPE)
            self.assertAlmostEqual(volume.voxel_size, VOXEL, places=2)
            self.assertTrue(set(np.unique(volume.data)) <= {0, 1})
        probability = read_volume(self.segment2d.probabilityMaps.getFirstItem().getFileName()).data
        self.assertTrue(0 <= probability.min() and probability.max() <= 1)
        # sentences start upper-case (they began "cytosol segmented in ...")
        self.assertTrue(self.segment2d.summary()[0].startswith("Cytosol segmented in 2 tomograms"))
        self.assertTrue(self.segment2d.methods()[0].startswith("Cytosol was segmented slice by slice"))

    def test_train2d_at_a_chosen_voxel_size_and_segment_back_at_the_tomograms(self):
        train = self.newProtocol(ProtDeepictTrain2D, inputTomograms=self.tomos.Tomograms,
                                 inputMasks=self.masks.tomomasks, className="cytosol", epochs=1, tilesPerEpoch=4,
                                 tileSize=32, batchSize=2, zStride=8, trainingVoxelSize=20.0)
        self.launchProtocol(train)
        self.assertAlmostEqual(train.deepictModel.getVoxelSize(), 20.0, places=2)
        segment = self.newProtocol(ProtDeepictSegment2D, inputTomograms=self.tomos.Tomograms,
                                   inputModel=train.deepictModel, threshold=0.3)
        self.launchProtocol(segment)
        volume = read_volume(segment.segmentations.getFirstItem().getFileName())
        self.assertEqual(volume.data.shape, SHAPE)  # rescaled on the fly, returned at the tomograms' sampling
        self.assertAlmostEqual(volume.voxel_size, VOXEL, places=2)

    def test_segment2d_takes_the_sampling_rate_of_the_set_not_the_header(self):
        """Scipion's sampling rate is what the form checks against the model's: segment2d read the MRC header
        instead (pick and segment 3D pass the sampling rate), so a wrong header failed the run (here 5x the
        model's: 'more than the 4x') or was rescaled for."""
        folder = os.path.abspath(self.proj.getTmpPath("wrong_header"))
        os.makedirs(folder)
        write_volume(os.path.join(folder, "cell0.mrc"), read_volume(self.tomos.Tomograms.getFirstItem()
                                                                    .getFileName()).data, 5 * VOXEL)
        tomos = self.newProtocol(ProtImportTomograms, filesPath=folder, filesPattern="cell0.mrc", samplingRate=VOXEL)
        self.launchProtocol(tomos)
        segment = self.newProtocol(ProtDeepictSegment2D, inputTomograms=tomos.Tomograms,
                                   inputModel=self.train2d.deepictModel, threshold=0.3)
        self.launchProtocol(segment)
        volume = read_volume(segment.segmentations.getFirstItem().getFileName())
        self.assertEqual(volume.data.shape, SHAPE)
        self.assertAlmostEqual(volume.voxel_size, VOXEL, places=2)

    def test_train2d_equalizes_with_one_checkbox_and_segment2d_equalizes_to_the_model(self):
        train = self.newProtocol(ProtDeepictTrain2D, inputTomograms=self.tomos.Tomograms,
                                 inputMasks=self.masks.tomomasks, className="cytosol", epochs=1, tilesPerEpoch=4,
                                 tileSize=32, batchSize=2, zStride=8, equalizeTraining=True, spectrumLowpass=40.0)
        self.launchProtocol(train)
        self.assertTrue(train.deepictModel.hasSpectrum())
        self.assertTrue(any("equalized to their mean spectrum" in line for line in train.summary()))
        segment = self.newProtocol(ProtDeepictSegment2D, inputTomograms=self.tomos.Tomograms,
                                   inputModel=train.deepictModel, threshold=0.3)
        self.launchProtocol(segment)
        stdout = open(segment.getLogPaths()[0]).read()
        self.assertEqual(stdout.count("to the model's reference spectrum (low-pass 40 Å)"), 2, stdout[-2000:])
        self.assertEqual(segment.segmentations.getSize(), 2)
        self.assertIn("positive resolution", " ".join(self.newProtocol(
            ProtDeepictTrain2D, inputTomograms=self.tomos.Tomograms, inputMasks=self.masks.tomomasks,
            equalizeTraining=True, spectrumLowpass=-5.0).validate()))

    def test_train2d_validate_refuses_what_the_engine_refuses(self):
        def errors(**values):
            return " ".join(self.newProtocol(ProtDeepictTrain2D, inputTomograms=self.tomos.Tomograms,
                                             inputMasks=self.masks.tomomasks, **values).validate())
        self.assertEqual(errors(), "")
        self.assertIn("multiple of 16", errors(tileSize=100))
        self.assertIn("Train at voxel size", errors(trainingVoxelSize=100.0))  # beyond 4x of 13.48 Å
        # the name becomes file names (<tsId>_<name>.mrc): a space was accepted
        self.assertIn("class name 'outer cytosol' may hold only letters, digits", errors(className="outer cytosol"))
        self.assertEqual(errors(className="outer_cytosol-2"), "")

    def test_probability_maps_are_refused_where_binary_masks_are_needed(self):
        """The maps are SetOfTomoMasks too, so every mask field offers them; taken as masks, every voxel above 0
        counted ("240 of 240 coordinates kept")."""
        maps, masks = self.segment2d.probabilityMaps, self.segment2d.segmentations
        said = "these are probability maps, not binary masks: choose the 'segmentations' output"

        def errors(protocolClass, **values):
            return " ".join(self.newProtocol(protocolClass, **values).validate())

        self.assertIn(said, errors(ProtDeepictTrain2D, inputTomograms=self.tomos.Tomograms, inputMasks=maps))
        self.assertNotIn(said, errors(ProtDeepictTrain2D, inputTomograms=self.tomos.Tomograms, inputMasks=masks))
        # Scipion fills this optional field with a selected pick run's maps: the message says where it is.
        self.assertIn("Context masks (optional, Post-processing tab; clear it for none): " + said,
                      errors(ProtDeepictPick, inputTomograms=self.tomos.Tomograms, inputModel=self.train2d.deepictModel,
                             contextMasks=maps))
        self.assertIn(said, errors(ProtDeepictFilterContext, inputCoordinates=self.coords.outputCoordinates,
                                   inputMasks=maps))
        self.assertNotIn(said, errors(ProtDeepictFilterContext, inputCoordinates=self.coords.outputCoordinates,
                                      inputMasks=masks))
        self.assertIn(said, errors(ProtDeepictEvaluate, evaluationMode=1, groundTruthMasks=maps,
                                   inputProbabilityMaps=maps))

    def test_2d_context_restricts_3d_picking(self):
        coords = self.coords
        train3d = self.newProtocol(ProtDeepictTrain3D, inputTomograms=self.tomos.Tomograms, classNames="ribosome",
                                   particleRadii="100", depth=2, initialFeatures=4, epochs=1, iterationsPerEpoch=2,
                                   batchSize=2, patchSize=32, valFraction=0.0)
        train3d.inputCoordinates.append(coords.outputCoordinates)
        self.launchProtocol(train3d)
        pick = self.newProtocol(ProtDeepictPick, inputTomograms=self.tomos.Tomograms,
                                inputModel=train3d.deepictModel, threshold=0.01, minSize=1,
                                contextMasks=self.segment2d.segmentations, contextMode=0)
        self.launchProtocol(pick)
        picks = getattr(pick, pick.OUTPUT_PREFIX)
        masks = {m.getTsId(): read_volume(m.getFileName()).data for m in self.segment2d.segmentations.iterItems()}
        for tomo in [t.clone() for t in picks.getPrecedents().iterItems()]:
            for coord in picks.iterCoordinates(volume=tomo):
                x, y, z = np.rint(coord.getPosition(BOTTOM_LEFT_CORNER)).astype(int)
                region = masks[tomo.getTsId()][max(z - 1, 0):z + 2, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
                self.assertTrue(region.any(), "a pick outside the cytosol survived 'intersection'")
        # Cytosol segmented on the tomograms binned 2x (as a user does, for speed) is context for picking the
        # unbinned ones: resampled to their voxels by the engine; it was refused.
        binned = self.proj.getTmpPath("binned")
        os.makedirs(binned)
        for tomo in self.tomos.Tomograms.iterItems():
            volume = read_volume(tomo.getFileName()).data
            write_volume(os.path.join(binned, os.path.basename(tomo.getFileName())), volume[::2, ::2, ::2], 2 * VOXEL)
        binnedTomos = self.newProtocol(ProtImportTomograms, filesPath=os.path.abspath(binned),
                                       filesPattern="cell*.mrc", samplingRate=2 * VOXEL)
        self.launchProtocol(binnedTomos)
        binnedCytosol = self.newProtocol(ProtDeepictSegment2D, inputTomograms=binnedTomos.Tomograms,
                                         inputModel=self.train2d.deepictModel, threshold=0.3)
        self.launchProtocol(binnedCytosol)
        pickBinned = self.newProtocol(ProtDeepictPick, inputTomograms=self.tomos.Tomograms,
                                      inputModel=train3d.deepictModel, threshold=0.01, minSize=1,
                                      contextMasks=binnedCytosol.segmentations, contextMode=0)
        self.assertEqual(pickBinned.validate(), [])
        self.launchProtocol(pickBinned)
        self.assertIn("resampled to the tomogram's grid", open(pickBinned.getLogPaths()[0]).read())
        binnedPicks = getattr(pickBinned, pickBinned.OUTPUT_PREFIX)
        binnedMasks = {m.getTsId(): read_volume(m.getFileName()).data for m in binnedCytosol.segmentations.iterItems()}
        self.assertGreater(binnedPicks.getSize(), 0)
        for tomo in [t.clone() for t in binnedPicks.getPrecedents().iterItems()]:
            for coord in binnedPicks.iterCoordinates(volume=tomo):
                x, y, z = (np.asarray(coord.getPosition(BOTTOM_LEFT_CORNER)) // 2).astype(int)
                region = binnedMasks[tomo.getTsId()][max(z - 1, 0):z + 2, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
                self.assertTrue(region.any(), "a pick outside the binned cytosol survived 'intersection'")
        # A 2D model is refused where a 3D one is needed, and vice versa.
        wrong = self.newProtocol(ProtDeepictPick, inputTomograms=self.tomos.Tomograms,
                                 inputModel=self.train2d.deepictModel)
        self.assertTrue(any("choose a 3D model" in e for e in wrong.validate()))
        wrong2d = self.newProtocol(ProtDeepictSegment2D, inputTomograms=self.tomos.Tomograms,
                                   inputModel=train3d.deepictModel)
        self.assertTrue(any("train 2D compartment network" in e for e in wrong2d.validate()))
