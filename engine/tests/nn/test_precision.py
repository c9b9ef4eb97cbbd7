"""The networks' numeric precision (deepict.nn.precision): auto, forced bf16, fp16 refused on the CPU,
fp32 model files whatever the training precision; and the folded batch norm of inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepict.errors import ParameterError
from deepict.infer.sliding_window import predict_tomogram
from deepict.nn import precision
from deepict.nn.networks import UNet3D, fold_batch_norm
from tiny_world import TINY_TRAINING, run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def auto_precision_after():
    """The precision is a process-wide setting: leave it at auto for the tests that follow."""
    yield
    precision.use_precision("auto")


def test_auto_is_fp32_on_a_cpu_without_native_bf16_and_bf16_on_one_with_it(monkeypatch):
    native = precision.cpu_has_native_bf16()  # the real probe: AVX2-only machines say no, AMX ones yes
    assert precision.resolve_precision("auto", "cpu").name == ("bf16" if native else "fp32")
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.resolve_precision("auto", "cpu").name == "fp32"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve_precision("auto", "cpu").name == "bf16"
    assert precision.resolve_precision("fp32", "cpu").name == "fp32"
    assert not precision.resolve_precision("fp32", "cpu").reduced


def test_fp16_on_the_cpu_and_unknown_names_are_refused():
    with pytest.raises(ParameterError, match="fp16 needs a CUDA GPU"):
        precision.resolve_precision("fp16", "cpu")
    with pytest.raises(ParameterError, match="unknown precision 'half'"):
        precision.use_precision("half")


def _random_batch_norm_network(lowest_scale: float = -0.5) -> UNet3D:
    torch.manual_seed(0)
    network = UNet3D(depth=2, initial_features=4, batch_norm=True)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm3d):  # trained-looking statistics, by default some negative scales
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(lowest_scale, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    return network.eval()


def _predict(network, data, **options) -> np.ndarray:
    out = np.zeros(data.shape, np.float32)

    def write(z0, probabilities):
        out[z0:z0 + probabilities.shape[1]] = probabilities[0]

    predict_tomogram(network, data, write, window=16, margin=2, batch_size=2, **options)
    return out


@pytest.mark.parametrize("lowest_scale", [-0.5, 0.2], ids=["some negative scales", "positive scales only"])
def test_folded_batch_norm_gives_the_probabilities_of_the_unfolded_network(lowest_scale):
    network = _random_batch_norm_network(lowest_scale)
    data = np.random.default_rng(0).normal(size=(20, 24, 28)).astype(np.float32)
    folded, plain = _predict(network, data), _predict(network, data, fold=False)
    assert np.abs(folded - plain).max() < 1e-4
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fold_batch_norm(network).modules())
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in network.modules())  # the caller's network is intact


def test_forced_bf16_inference_is_close_to_fp32():
    network = _random_batch_norm_network()
    data = np.random.default_rng(1).normal(size=(16, 20, 20)).astype(np.float32)
    fp32 = _predict(network, data)
    precision.use_precision("bf16")
    bf16 = _predict(network, data)
    assert 0 < np.abs(bf16 - fp32).max() < 0.02  # really ran in bf16, and close


def test_a_model_trained_in_bf16_is_a_plain_fp32_model_file(tmp_path, capsys):
    from deepict.synthetic import PhantomConfig, make_phantom, write_phantom
    phantom = make_phantom(PhantomConfig(shape_zyx=(32, 48, 48), seed=3, n_ribosomes=6, n_fas=1, n_distractors=1,
                                         n_vesicles=0, n_sheets=0))  # tiny_world's
    paths = write_phantom(phantom, tmp_path, "tomo")
    model = tmp_path / "ribo.pt"
    code, out, err = run(capsys, "train3d", "--tomograms", paths["tomogram"], "--coords", paths["ribosome"],
                         "--out", model, *TINY_TRAINING, "--precision", "bf16")
    assert code == 0, err
    assert "deepict train3d: device cpu, precision bf16" in out
    saved = torch.load(model, map_location="cpu", weights_only=True)
    tensors = [value for value in _tensors(saved) if value.is_floating_point()]
    assert tensors and all(value.dtype == torch.float32 for value in tensors)
    assert "bf16" not in repr({k: v for k, v in saved.items() if not isinstance(v, (dict, torch.Tensor))})


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)


def test_fp16_on_the_cpu_exits_2_with_one_clear_line(tmp_path, capsys):
    code, out, err = run(capsys, "train3d", "--tomograms", tmp_path / "a.mrc", "--coords", tmp_path / "a.csv",
                         "--radius", "4", "--out", tmp_path / "m.pt", "--device", "cpu", "--precision", "fp16")
    assert code == 2 and "Traceback" not in err
    assert err.strip() == ("deepict train3d: error: --precision fp16 needs a CUDA GPU: on the CPU use bf16 (fast on "
                           "CPUs with AMX or AVX-512 BF16) or fp32 (--precision auto chooses)")
