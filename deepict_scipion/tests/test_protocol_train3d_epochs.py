"""The train 3D protocol's Epochs: empty by default, so the engine chooses (twice the default for a rare
particle), and what the model ran is what the methods text reports."""

from unittest import mock

from deepict import jobs
from deepict.parameters import default_of
from deepict_scipion.protocols import ProtDeepictTrain3D


def test_epochs_are_left_to_the_engine_unless_the_form_gives_them():
    protocol = ProtDeepictTrain3D()
    assert protocol.epochs.get() is None and default_of(jobs.Train3DJob, "training.epochs") is None
    config = protocol._trainConfig(["fas"])
    config.validate()  # an empty field is valid: the engine chooses
    assert config.epochs is None
    protocol.epochs.set(120)
    assert protocol._trainConfig(["fas"]).epochs == 120
    assert "rare particle" in protocol.getParam("epochs").help.get()


def test_the_trained_epochs_come_from_the_model_when_the_field_was_empty():
    protocol = ProtDeepictTrain3D()
    with mock.patch.object(ProtDeepictTrain3D, "_existingInfo", return_value={"epochs": 80}):
        assert protocol._trainedEpochs() == 80
    protocol.epochs.set(30)
    with mock.patch.object(ProtDeepictTrain3D, "_existingInfo", return_value=None):
        assert protocol._trainedEpochs() == 30
