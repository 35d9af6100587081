"""Each metric's cross-process reduction, without processes: a two-rank gather played in-process.

The gloo test (test_metrics_ddp.py) is the real thing but costs seconds of process start-up;
this one hands the metric's sync a gather that returns this rank's state and the other rank's, so
a state registered with the wrong ``dist_reduce_fx`` (none, or a mean for a count) fails here.
"""

from __future__ import annotations

import pytest
import torch
from torchmetrics import Metric

from tests.metrics.test_metrics_ddp import SHARDS, feed, make_batch, make_metrics


def _state_tensors(metric: Metric) -> list[torch.Tensor]:
    """The metric's states in registration order, list states concatenated as ``sync`` does."""
    out = []
    for value in metric.metric_state.values():
        out.append(torch.cat(value) if isinstance(value, list) else value)
    return out


def _updated(name: str, batches: tuple[int, ...]) -> Metric:
    metric = make_metrics()[name]
    for index in batches:
        feed(name, metric, make_batch(index))
    return metric


@pytest.mark.parametrize("name", list(make_metrics()))
def test_two_rank_sync_equals_one_process_on_all_data(name: str) -> None:
    """Faulty variant: ``add_state(..., dist_reduce_fx=None)`` (or no reduction) for a sum state."""
    rank0, rank1 = _updated(name, SHARDS[0]), _updated(name, SHARDS[1])
    theirs = iter(_state_tensors(rank1))
    # What torchmetrics calls inside compute() when a process group is up.
    rank0.dist_sync_fn = lambda tensor, group=None: [tensor, next(theirs)]
    rank0.distributed_available_fn = lambda: True
    synced = rank0.compute()
    expected = _updated(name, SHARDS[0] + SHARDS[1]).compute()
    if isinstance(expected, dict):
        assert synced.keys() == expected.keys()
        for key in expected:
            torch.testing.assert_close(synced[key], expected[key], rtol=1e-6, atol=1e-9)
    else:
        torch.testing.assert_close(synced, expected, rtol=1e-6, atol=1e-9)
