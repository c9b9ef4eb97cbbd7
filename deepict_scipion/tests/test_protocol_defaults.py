"""The forms follow the command line's rules: what a field defaults to, which fields are required, and that every
inference option the engine takes reaches the job (a new user found the train 3D form naming the class 'ribosome'
and painting 100 Å spheres where `deepict train3d` says 'particle' and requires --radius, and no field for
--margin in the pick form)."""

from __future__ import annotations

from unittest import mock

from pyworkflow.protocol import params
from pyworkflow.tests import BaseTest, setupTestProject

from deepict import jobs
from deepict.infer.options import InferenceOptions
from deepict.parameters import default_of
from deepict.train.data3d import class_names
from deepict_scipion.protocols import ProtDeepictPick, ProtDeepictSegment3D, ProtDeepictTrain3D

VOXEL = 13.48


def _fake(**values):
    """A Scipion object answering the getters a job needs (getFileName, getSamplingRate, hasSpectrum)."""
    return mock.Mock(**{f"{name}.return_value": value for name, value in values.items()})


class TestFormsFollowTheCommandLine(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)

    def test_the_margin_is_an_advanced_field_with_the_engines_default(self):
        for protocolClass in (ProtDeepictPick, ProtDeepictSegment3D):
            protocol = self.newProtocol(protocolClass)
            field = protocol.getParam("margin")
            self.assertIsNotNone(field, protocolClass.__name__)
            self.assertEqual(field.expertLevel.get(), params.LEVEL_ADVANCED)
            self.assertEqual(protocol.margin.get(), InferenceOptions().margin)
            self.assertIn("overlap by twice this margin", field.help.get())

    def test_the_margin_reaches_the_job(self):
        for protocolClass in (ProtDeepictPick, ProtDeepictSegment3D):
            protocol = self.newProtocol(protocolClass, window=64, margin=5)
            protocol.tomos = {"TS_01": _fake(getFileName="/data/TS_01.mrc")}
            model = _fake(getFileName="/models/m.pt", hasSpectrum=False)
            with mock.patch.object(protocol.inputModel, "get", return_value=model), \
                    mock.patch.object(protocol.inputTomograms, "get", return_value=_fake(getSamplingRate=VOXEL)):
                job = protocol._inferenceJob("TS_01", None)
            self.assertEqual((job.inference.window, job.inference.margin), (64, 5), protocolClass.__name__)

    def test_a_margin_that_leaves_no_core_is_refused_before_the_run(self):
        pick = self.newProtocol(ProtDeepictPick, window=64, margin=31)
        self.assertEqual(pick._validateMargin(), [])
        pick.margin.set(32)
        errors = pick._validateMargin()
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("blended margin", errors[0])
        self.assertIn("below 32 voxels", errors[0])
        pick.margin.set(None)
        self.assertIn("give the blended margin", pick._validateMargin()[0])

    def test_the_particle_radius_has_no_default_and_is_required(self):
        self.assertIsNone(default_of(jobs.Train3DJob, "radius"))  # deepict train3d: --radius required with --coords
        train = self.newProtocol(ProtDeepictTrain3D)
        self.assertFalse(train.particleRadii.get())
        self.assertTrue(train.getParam("particleRadii").isImportant())  # highlighted: to be filled in
        tomograms = _fake(getSamplingRate=VOXEL)
        with mock.patch.object(ProtDeepictTrain3D, "_labelSets", return_value=[None]):  # one coordinate set
            errors = train._validateRadii(tomograms)
            self.assertEqual(len(errors), 1, errors)
            self.assertIn("Particle radius: give the particles' radius in Å", errors[0])
            train.particleRadii.set("100")
            self.assertEqual(train._validateRadii(tomograms), [])

    def test_class_names_left_empty_are_the_command_lines(self):
        train = self.newProtocol(ProtDeepictTrain3D)
        self.assertFalse(train.classNames.get())
        for count in (1, 2):
            with mock.patch.object(ProtDeepictTrain3D, "_labelSets", return_value=[None] * count):
                self.assertEqual(train._classNames(), class_names([], count))
        self.assertEqual(class_names([], 1), ["particle"])
        train.classNames.set("ribosome")
        with mock.patch.object(ProtDeepictTrain3D, "_labelSets", return_value=[None]):
            self.assertEqual(train._classNames(), ["ribosome"])
