"""Tests of weight averaging (deepict.train.averaging) and of its use by 3D training."""

from __future__ import annotations

import pytest
import torch

from deepict.train.averaging import WeightAverage, averaged_network, estimate_batch_norm

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_network() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3, padding=1), torch.nn.BatchNorm3d(2))


def test_the_average_is_the_mean_of_the_snapshots_and_does_not_follow_the_network():
    network, average, snapshots = small_network(), WeightAverage(), []
    for epoch in (3, 4, 5):
        with torch.no_grad():
            for parameter in network.parameters():
                parameter.add_(torch.randn_like(parameter))
        snapshots.append({k: v.clone() for k, v in network.state_dict().items()})
        average.add(network, epoch)
    with torch.no_grad():  # changing the network afterwards leaves the average alone
        network[0].weight.fill_(100.0)
    assert average.count == 3 and average.first_epoch == 3
    for name in ("0.weight", "0.bias", "1.weight", "1.bias"):
        expected = sum(s[name] for s in snapshots) / 3
        assert torch.allclose(average.mean[name], expected, atol=1e-6), name

    resumed = WeightAverage()
    resumed.restore(average.state())
    assert resumed.count == 3 and resumed.first_epoch == 3
    copy = resumed.network(network)
    assert torch.allclose(copy[0].weight, average.mean["0.weight"])
    assert not torch.equal(network[0].weight, copy[0].weight)


def test_batch_norm_statistics_are_estimated_anew_on_the_given_batches():
    network = torch.nn.Sequential(torch.nn.BatchNorm3d(1))
    network[0].running_mean.fill_(50.0)
    batches = [torch.full((2, 1, 4, 4, 4), 1.0), torch.full((2, 1, 4, 4, 4), 3.0)]
    assert estimate_batch_norm(network, batches)
    assert network[0].running_mean.item() == pytest.approx(2.0)  # the mean over the batches, not a blend
    assert network[0].momentum == pytest.approx(0.1) and not network.training
    assert not estimate_batch_norm(torch.nn.Sequential(torch.nn.Conv3d(1, 1, 1)), batches)


def test_no_snapshot_no_averaged_network():
    assert averaged_network(WeightAverage(), small_network(), lambda: []) is None
