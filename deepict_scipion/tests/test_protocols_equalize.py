"""Spectrum equalization in a real (headless) Scipion project: equalize -> train with the reference
spectrum -> pick with on-the-fly equalization, the spectrum viewer and the input checks.

Two small synthetic tomograms imaged differently (the second one blurrier, with coarser noise)
stand in for two microscopes; every protocol runs in its own subprocess, as from the GUI.
"""

import glob
import json
import os
import unittest

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject
from tomo.objects import SetOfTomograms

from deepict_scipion.convert import equalizedReference, tomogramsByKey
from deepict.io import read_volume, write_volume
from deepict.jobs import read_job
from deepict.spectrum import read_spectrum
from deepict.synthetic import PhantomConfig, make_phantom
from deepict_scipion.protocols import ProtDeepictEqualize, ProtDeepictPick, ProtDeepictTrain3D
from deepict_scipion.tests.test_protocols_3d import importPhantoms
from deepict_scipion.viewers.viewer_spectrum import DeepictSpectrumViewer, equalizedRatio, plotEqualizationSpectra

VOXEL = 13.48
SHAPE = (32, 64, 64)
LOWPASS = 40.0
#: Band (1/Å) where the equalized spectra must follow the reference: above the lowest shells of a
#: 64-voxel box and below the low-pass.
BAND = (1 / 250, 1 / 50)
TINY_TRAINING = dict(depth=2, initialFeatures=4, epochs=1, iterationsPerEpoch=2, batchSize=1, patchSize=32,
                     valFraction=0.0)


def writeTomograms(folder, count=2):
    """Phantoms from 'different microscopes' (odd ones blurrier, with much coarser noise) with ribosome txt files."""
    os.makedirs(folder, exist_ok=True)
    imaging = [{}, {"lowpass": 0.08, "noise_lowpass": 0.1}]
    for index in range(count):
        extra = imaging[index % 2]
        phantom = make_phantom(PhantomConfig(shape_zyx=SHAPE, n_ribosomes=6, n_fas=1, n_distractors=2,
                                             n_organelles=0, n_vesicles=1, n_sheets=0, seed=index, **extra))
        write_volume(os.path.join(folder, f"tomo{index}.mrc"), phantom.tomogram, VOXEL)
        np.savetxt(os.path.join(folder, f"tomo{index}.txt"), phantom.coords["ribosome"], fmt="%.2f")


class TestEqualizationHelpers(unittest.TestCase):
    """The engine pieces behind the protocols (no project, no training)."""

    def setUp(self):
        from deepict.spectrum import radial_spectrum
        self.phantoms = [make_phantom(PhantomConfig(shape_zyx=SHAPE, n_ribosomes=4, n_fas=0, n_distractors=0,
                                                    n_organelles=0, n_vesicles=1, n_sheets=0, seed=s, **extra))
                         for s, extra in enumerate([{}, {"lowpass": 0.08, "noise_lowpass": 0.1}])]
        self.reference = radial_spectrum(self.phantoms[0].tomogram, VOXEL)

    def test_spectrum_record_round_trip_and_equalize_modes(self):
        from deepict.errors import ParameterError
        from deepict.nn.model_files import ModelInfo
        from deepict.infer.model_spectrum import model_reference_spectrum, should_equalize, spectrum_record
        record = spectrum_record(self.reference, LOWPASS, source="ref.tsv")
        json.dumps(record)  # plain data only
        info = ModelInfo(kind="3d", classes=["ribosome"], architecture={}, voxel_size=VOXEL, patch_size=32,
                         overlap=12, spectrum=record)
        back = model_reference_spectrum(info)
        np.testing.assert_allclose(back.amplitude, self.reference.amplitude)
        self.assertEqual(back.voxel_size, VOXEL)
        self.assertEqual((record["lowpass_angstrom"], record["source"]), (LOWPASS, "ref.tsv"))
        self.assertEqual([should_equalize(info, m) for m in ("auto", "on", "off")], [True, True, False])
        info.spectrum = None
        self.assertEqual([should_equalize(info, m) for m in ("auto", "off")], [False, False])
        with self.assertRaisesRegex(ParameterError, "stores no reference spectrum"):
            should_equalize(info, "on", "m.pt")

    def test_train3d_reports_tomograms_that_are_not_equalized(self):
        from deepict.train.data3d import check_equalized
        from deepict.spectrum import equalize
        from deepict.train.train3d import TrainingTomogram
        other = self.phantoms[1].tomogram
        tomograms = [TrainingTomogram("raw", other, None, None, VOXEL),
                     TrainingTomogram("equalized", equalize(other, VOXEL, self.reference, LOWPASS, log=None),
                                      None, None, VOXEL)]
        messages = []
        self.assertEqual(check_equalized(tomograms, self.reference, LOWPASS, log=messages.append), ["raw"])
        self.assertIn("does not look equalized", messages[0])

    def test_train3d_refuses_a_low_pass_without_equalization(self):
        from deepict.errors import ParameterError
        from deepict.train.equalization import check_spectrum_options
        with self.assertRaisesRegex(ParameterError, "needs --equalize-to"):
            check_spectrum_options(None, "none", 40.0, 0.1)
        check_spectrum_options(None, "auto", 40.0, 0.1)  # the default equalizes: a low-pass is fine


def bandDeviation(spectrum, reference):
    """Largest relative deviation of the spectrum's shape from the reference's in BAND (scale removed)."""
    inside = (spectrum.frequency >= BAND[0]) & (spectrum.frequency <= BAND[1])
    ratio = spectrum.amplitude[inside] / reference.at(spectrum.frequency[inside])
    return float(np.abs(ratio / np.median(ratio) - 1).max())


class TestDeepictEqualizeProtocols(BaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        importPhantoms(cls, 2, writeTomograms)
        cls.equalize = cls.newEqualize(lowpassAngstrom=LOWPASS, numberOfThreads=2)  # tomograms in parallel
        cls.launchProtocol(cls.equalize)
        # Trained on the equalized tomograms: the reference spectrum is found from the input set.
        cls.train = cls.newProtocol(ProtDeepictTrain3D, inputTomograms=cls.equalize.Tomograms,
                                    classNames="ribosome", particleRadii="80", **TINY_TRAINING)
        cls.train.inputCoordinates.append(cls.importCoords.outputCoordinates)
        cls.launchProtocol(cls.train)

    @classmethod
    def newEqualize(cls, referenceItem=1, **kwargs):
        """An equalize protocol on the imported tomograms, its reference tomogram item ``referenceItem`` of them, as
        the form gives it: the set, and the item's tsId."""
        protocol = cls.newProtocol(ProtDeepictEqualize, inputTomograms=cls.importTomos.Tomograms, **kwargs)
        if referenceItem is not None:
            protocol.referenceTomograms.set(cls.importTomos.Tomograms)
            protocol.referenceTsId.set(cls.importTomos.Tomograms[referenceItem].getTsId())
        return protocol

    def referenceKey(self):
        return self.importTomos.Tomograms[1].getTsId()

    # ------------------------------------------ equalize ----------------------------------------
    def test_equalized_set_keeps_sampling_tsids_and_origins(self):
        inputs = {t.getTsId(): t.clone() for t in self.importTomos.Tomograms.iterItems()}
        outputs = {t.getTsId(): t.clone() for t in self.equalize.Tomograms.iterItems()}
        self.assertEqual(set(outputs), set(inputs))
        self.assertAlmostEqual(self.equalize.Tomograms.getSamplingRate(), VOXEL, places=3)
        for key, tomo in outputs.items():
            self.assertAlmostEqual(tomo.getSamplingRate(), VOXEL, places=3)
            self.assertNotEqual(os.path.abspath(tomo.getFileName()), os.path.abspath(inputs[key].getFileName()))
            np.testing.assert_allclose(tomo.getShiftsFromOrigin(), inputs[key].getShiftsFromOrigin())
            volume = read_volume(tomo.getFileName())
            self.assertEqual(volume.data.shape, SHAPE)
            self.assertAlmostEqual(volume.voxel_size, VOXEL, places=2)
            self.assertAlmostEqual(float(np.std(volume.data)), 1.0, places=2)
        spectrumFile = self.equalize.referenceSpectrum.getFileName()
        self.assertTrue(os.path.exists(spectrumFile))
        self.assertTrue(any(self.equalize.referenceSpectrumPath() in line for line in self.equalize.summary()),
                        self.equalize.summary())
        reference, lowpass, _ = equalizedReference(self.equalize.Tomograms)
        self.assertEqual(os.path.abspath(reference), os.path.abspath(spectrumFile))
        self.assertEqual(lowpass, LOWPASS)

    def test_equalized_spectra_follow_the_reference(self):
        reference = read_spectrum(self.equalize.referenceSpectrum.getFileName())
        files = {key: (inp, out) for key, inp, out in self.equalize.spectrumFiles()}
        self.assertEqual(len(files), 2)
        other = next(k for k in files if k != self.referenceKey())
        before = bandDeviation(read_spectrum(files[other][0]), reference)
        after = bandDeviation(read_spectrum(files[other][1]), reference)
        self.assertGreater(before, 0.3, "the two 'microscopes' should differ before equalization")
        self.assertLess(after, 0.1, f"equalized spectrum deviates by {after:.3f} from the reference")

    # ----------------------------------- train and pick ----------------------------------------
    def test_train_stores_the_reference_spectrum(self):
        model = self.train.deepictModel
        self.assertTrue(model.hasSpectrum())
        info = json.load(open(self.train._modelInfoPath()))
        self.assertTrue(info["has_spectrum"])
        from deepict.nn.model_files import read_model_info
        stored = read_model_info(model.getFileName()).spectrum
        reference = read_spectrum(self.equalize.referenceSpectrum.getFileName())
        np.testing.assert_allclose(stored["frequency"], reference.frequency, rtol=1e-6)
        np.testing.assert_allclose(stored["amplitude"], reference.amplitude, rtol=1e-6)
        self.assertAlmostEqual(stored["voxel_size"], VOXEL, places=2)
        self.assertEqual(stored["lowpass_angstrom"], LOWPASS)

    def test_train_equalizes_raw_tomograms_with_one_checkbox(self):
        train = self.newProtocol(ProtDeepictTrain3D, inputTomograms=self.importTomos.Tomograms, classNames="ribosome",
                                 particleRadii="80", equalizeTraining=True, spectrumLowpass=LOWPASS, **TINY_TRAINING)
        train.inputCoordinates.append(self.importCoords.outputCoordinates)
        self.assertEqual(train.validate(), [])
        self.launchProtocol(train)
        self.assertTrue(train.deepictModel.hasSpectrum())
        from deepict.nn.model_files import read_model_info
        stored = read_model_info(train.deepictModel.getFileName()).spectrum
        self.assertIn("mean spectrum of the 2 training tomograms", stored["source"])
        self.assertEqual(stored["lowpass_angstrom"], LOWPASS)
        self.assertTrue(any("equalized to their mean spectrum" in line for line in train.summary()))
        # Tomograms already equalized by the equalize protocol keep their reference (the checkbox is on by default).
        twice = self.newProtocol(ProtDeepictTrain3D, inputTomograms=self.equalize.Tomograms, classNames="ribosome",
                                 particleRadii="80", **TINY_TRAINING)
        twice.inputCoordinates.append(self.importCoords.outputCoordinates)
        self.assertTrue(twice.equalizeTraining.get())
        self.assertEqual(twice.validate(), [])
        job = twice._trainJob(["t.mrc"], [["t.txt"]])
        self.assertEqual(job.equalize_to, "none")
        self.assertEqual(job.spectrum_reference, os.path.abspath(self.equalize.referenceSpectrum.getFileName()))

    def test_pick_equalizes_on_the_fly(self):
        pick = self.newProtocol(ProtDeepictPick, inputTomograms=self.importTomos.Tomograms,
                                inputModel=self.train.deepictModel, threshold=0.05, minSize=1, window=64)
        self.assertEqual(pick.warnings(), [])
        self.launchProtocol(pick)
        self.assertIsNotNone(getattr(pick, pick.OUTPUT_PREFIX))
        stdout = open(pick.getLogPaths()[0]).read()
        for key in tomogramsByKey(pick.inputTomograms.get()):
            self.assertEqual(read_job(pick._getExtraPath(f"pick_{key}.json")).inference.equalize, "on")
        self.assertEqual(stdout.count("to the model's reference spectrum (low-pass 40 Å)"), 2, stdout[-2000:])
        self.assertEqual(glob.glob(pick._getExtraPath(".deepict-*")), [], "temporary files left behind")
        # One independent step per tomogram (Scipion runs them in parallel, or as parallel queue jobs).
        inference = [s for s in pick.loadSteps() if s.funcName.get() == "inferenceStep"]
        self.assertEqual(len(inference), 2)
        self.assertEqual([list(s._prerequisites) for s in inference], [[], []])

    def test_pick_warns_when_equalization_is_off(self):
        pick = self.newProtocol(ProtDeepictPick, inputTomograms=self.importTomos.Tomograms,
                                inputModel=self.train.deepictModel, equalize=False)
        self.assertTrue(any("equalization is switched off" in w for w in pick.warnings()))
        pick.tomos = tomogramsByKey(pick.inputTomograms.get())
        self.assertEqual(pick._inferenceJob(next(iter(pick.tomos)), None).inference.equalize, "off")
        onEqualized = self.newProtocol(ProtDeepictPick, inputTomograms=self.equalize.Tomograms,
                                       inputModel=self.train.deepictModel, equalize=False)
        self.assertEqual(onEqualized.warnings(), [])

    # -------------------------------------------- viewer ----------------------------------------
    def test_viewer_plots_the_spectra(self):
        png = os.path.abspath(self.proj.getTmpPath("spectra.png"))
        self.assertIsNotNone(plotEqualizationSpectra(self.equalize, png))
        self.assertGreater(os.path.getsize(png), 10000)
        # the ratio panel reads 1 where the equalized spectra follow the low-passed reference (it read 1.32 for
        # every tomogram, the reference itself included: the low-pass lowers the variance they are scaled by)
        reference = read_spectrum(self.equalize.referenceSpectrumPath())
        for _, _, outputPath in self.equalize.spectrumFiles():
            frequency, ratio = equalizedRatio(read_spectrum(outputPath), reference, LOWPASS,
                                              self.equalize.lowpassWidth.get())
            band = (frequency > 1 / 300) & (frequency < 0.8 / LOWPASS)
            self.assertLess(np.max(np.abs(ratio[band] - 1)), 0.1, outputPath)
        viewer = DeepictSpectrumViewer(project=self.proj, protocol=self.equalize)
        views = viewer._visualize(self.equalize)
        self.assertEqual(len(views), 1)
        self.assertGreater(os.path.getsize(self.equalize._getExtraPath("spectra.png")), 10000)

    # ------------------------------------------- _validate --------------------------------------
    def test_validate_refuses_missing_reference_and_low_pass_beyond_nyquist(self):
        errors = " ".join(self.newEqualize(referenceItem=None, lowpassAngstrom=20.0).validate())
        self.assertIn("Reference tomograms: none selected", errors)
        self.assertIn("finer than the Nyquist limit", errors)
        self.assertEqual(self.newEqualize(lowpassAngstrom=None).validate(), [])
        self.assertIn("longer than the tomograms", " ".join(self.newEqualize(lowpassAngstrom=5000.0).validate()))

    def test_validate_checks_the_spectrum_file(self):
        bad = self.proj.getTmpPath("bad_spectrum.tsv")
        with open(bad, "w") as handle:
            handle.write("# voxel_size_angstrom: 13.48\nfrequency\tpower\n0.01\t1\n0.02\t2\n")
        original = self.proj.getTmpPath("original_spectrum.tsv")
        with open(original, "w") as handle:
            handle.write("freq\tintensity\n0\t1.0\n1\t0.5\n")
        fromFile = dict(referenceItem=None, referenceSource=1)
        errors = " ".join(self.newEqualize(referenceFile=os.path.abspath(bad), **fromFile).validate())
        self.assertIn("lacks the column(s) frequency_per_angstrom, amplitude", errors)
        errors = " ".join(self.newEqualize(referenceFile=os.path.abspath(original), **fromFile).validate())
        self.assertIn("give the voxel size", errors)
        self.assertIn("give the box", errors)
        self.assertEqual(self.newEqualize(referenceFile=os.path.abspath(original), referenceVoxelSize=13.48,
                                          referenceBox="64 64 32", **fromFile).validate(), [])
        self.assertEqual(self.newEqualize(referenceFile=self.equalize.referenceSpectrum.getFileName(),
                                          **fromFile).validate(), [])
        self.assertIn("none given", " ".join(self.newEqualize(**fromFile).validate()))
        train = self.newProtocol(ProtDeepictTrain3D, inputTomograms=self.importTomos.Tomograms,
                                 classNames="ribosome", spectrumReference=os.path.abspath(bad), **TINY_TRAINING)
        train.inputCoordinates.append(self.importCoords.outputCoordinates)
        self.assertTrue(any("lacks the columns" in e for e in train.validate()), train.validate())

    def test_the_reference_is_a_tomogram_of_a_set_by_tsid_and_masks_are_no_tomograms(self):
        """Scipion's chooser offers no single tomogram of a SetOfTomograms, but it offers masks and probability maps
        (a SetOfTomoMasks is a SetOfTomograms) wherever tomograms are asked for: the walk chose both."""
        from tomo.objects import SetOfTomoMasks, TomoMask
        tomograms = self.importTomos.Tomograms
        first = protocol = self.newEqualize(referenceItem=None)
        protocol.referenceTomograms.set(tomograms)  # tsId left empty: the set's first
        self.assertEqual(protocol.validate(), [])
        self.assertEqual(first.referenceTomogram().getTsId(), tomograms.getFirstItem().getTsId())
        protocol.referenceTsId.set("nonesuch")
        errors = " ".join(protocol.validate())
        self.assertIn("'nonesuch' is not in", errors)
        self.assertIn(self.referenceKey(), errors)
        masks = SetOfTomoMasks.create(os.path.abspath(self.proj.getTmpPath()), suffix="masks")
        masks.setSamplingRate(VOXEL)
        for tomo in tomograms.iterItems():
            mask = TomoMask()
            mask.copyInfo(tomo)
            mask.setLocation(tomo.getFileName())
            masks.append(mask)
        masks.write()
        protocol = self.newEqualize()
        protocol.inputTomograms.set(masks)
        self.assertTrue(any(e.startswith("Tomograms: ") and "are masks, not tomograms" in e
                            for e in protocol.validate()), protocol.validate())
        protocol = self.newEqualize(referenceItem=None)
        protocol.referenceTomograms.set(masks)
        self.assertTrue(any(e.startswith("Reference tomograms: ") and "are masks, not tomograms" in e
                            for e in protocol.validate()), protocol.validate())
        train = self.newProtocol(ProtDeepictTrain3D, inputTomograms=masks, classNames="ribosome", particleRadii="80",
                                 **TINY_TRAINING)
        train.inputCoordinates.append(self.importCoords.outputCoordinates)
        self.assertTrue(any("are masks, not tomograms" in e for e in train.validate()), train.validate())
        pick = self.newProtocol(ProtDeepictPick, inputTomograms=masks, inputModel=self.train.deepictModel)
        self.assertTrue(any("are masks, not tomograms" in e for e in pick.validate()), pick.validate())

    def test_validate_refuses_an_empty_set(self):
        empty = SetOfTomograms.create(os.path.abspath(self.proj.getTmpPath()), suffix="empty")
        empty.setSamplingRate(VOXEL)
        empty.write()
        protocol = self.newEqualize()
        protocol.inputTomograms.set(empty)
        self.assertTrue(any("is empty" in e for e in protocol.validate()), protocol.validate())
