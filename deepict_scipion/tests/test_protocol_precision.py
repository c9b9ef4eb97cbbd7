"""The network protocols' Precision field (advanced) reaches the job file they hand the engine."""

from __future__ import annotations

import json
import os
from unittest import mock

from pyworkflow.protocol import params
from pyworkflow.tests import BaseTest, setupTestProject

from deepict import jobs
from deepict.parameters import PRECISIONS
from deepict_scipion import Plugin
from deepict_scipion.protocols import (ProtDeepictEnsemble, ProtDeepictPick, ProtDeepictSegment2D,
                                       ProtDeepictSegment3D, ProtDeepictTrain2D, ProtDeepictTrain3D)
from deepict_scipion.protocols.protocol_base import PRECISION_PARAM

NETWORK_PROTOCOLS = (ProtDeepictTrain3D, ProtDeepictTrain2D, ProtDeepictPick, ProtDeepictSegment3D,
                     ProtDeepictSegment2D, ProtDeepictEnsemble)


class TestPrecisionReachesTheJob(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)

    def test_every_network_protocol_has_the_advanced_precision_field_defaulting_to_auto(self):
        for protocol_class in NETWORK_PROTOCOLS:
            protocol = self.newProtocol(protocol_class)
            field = protocol.getParam(PRECISION_PARAM)
            self.assertIsNotNone(field, protocol_class.__name__)
            self.assertEqual(field.expertLevel.get(), params.LEVEL_ADVANCED)
            self.assertEqual(PRECISIONS[getattr(protocol, PRECISION_PARAM).get()], "auto")
            self.assertIn("fp32", field.help.get())

    def test_the_chosen_precision_is_written_into_the_job_file(self):
        pick = self.newProtocol(ProtDeepictPick, **{PRECISION_PARAM: PRECISIONS.index("bf16")})
        pick.useGpu.set(False)
        os.makedirs(pick._getExtraPath(), exist_ok=True)
        job = jobs.PickJob(model="/m.pt", tomogram="/t.mrc", out="/o.csv")
        with mock.patch.object(Plugin, "runDeepict") as run:
            pick.runDeepict(job, "pick_precision")
        written = json.loads(open(pick._getExtraPath("pick_precision.json")).read())
        self.assertEqual((written["precision"], written["inference"]["device"]), ("bf16", "cpu"))
        self.assertEqual(run.call_args.args[1], "pick")
