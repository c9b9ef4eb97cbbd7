"""The pick protocol's 'Split touching particles?' reaches the engine's job (default: the job's own)."""

from unittest import mock

from deepict import jobs
from deepict.parameters import default_of
from deepict_scipion.protocols import ProtDeepictPick
from deepict_scipion.protocols.protocol_base import ProtDeepictInferenceBase


def test_split_touching_follows_the_form():
    protocol = ProtDeepictPick()
    assert protocol.splitTouching.get() == default_of(jobs.PickJob, "split_touching")
    base = jobs.PickJob(model="m.pt", tomogram="t.mrc", out="p.csv")
    with mock.patch.object(ProtDeepictInferenceBase, "_inferenceJob", return_value=base):
        for value in (True, False):
            protocol.splitTouching.set(value)
            assert protocol._inferenceJob("t", None).split_touching is value
