"""A supervised per-frame tracker selector on the feature network's inputs, with no energy.

The learned fusion sees the trackers' boxes only through :func:`tracker_features` (and the
tracker identity). This baseline asks how far those same inputs go without the argmin: an MLP,
trained on the training sequences, regresses each tracker's IoU with the ground truth from
them, and each frame takes the box of the tracker with the highest predicted IoU. If it does
no better than the best single tracker, the features, not the energy, are what limits fusion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_energy.baselines.tracking import Fuser, batch_of
from lightning_energy.datasets.otb import TrackerResults, TrackingSequences
from lightning_energy.energies.tracking import fusion_inputs
from lightning_energy.errors import ShapeError, describe
from lightning_energy.metrics.functional import box_iou
from lightning_energy.networks.tracker import NUM_FEATURES, tracker_features


def selector_inputs(item: TrackerResults, trust: Tensor | None = None
                    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Features, IoU targets and validity of one sequence.

    Args:
        item: One sequence with K trackers.
        trust: Optional per-tracker weights (K,) for the trust-weighted reference of
            :func:`tracker_features`.

    Returns:
        ``x`` (T, K, :data:`NUM_FEATURES` + K): the features and a one-hot tracker identity;
        ``iou`` (T, K): each box's IoU with the ground truth (0 where either is missing);
        ``valid`` (T, K): the tracker reported a usable box;
        ``labelled`` (T, K): the box and the ground truth are both valid.
    """
    batch = batch_of(item)
    k = batch.boxes.shape[2]
    if trust is not None and trust.shape != (k,):
        raise ShapeError(f"Expected `trust` of shape ({k},), one weight per tracker of sequence "
                         f"{item.sequence!r}, got {describe(trust)}.")
    inputs, _ = fusion_inputs(batch.boxes.double(), batch.valid, batch.frame_valid)
    feats = tracker_features(inputs, trust=trust)[0].float()
    identity = torch.eye(k)[None].expand(feats.shape[0], k, k)
    boxes = batch.boxes[0].double()
    iou = box_iou(boxes, batch.target[0, :, None].double().expand_as(boxes)).float()
    labelled = batch.valid[0] & batch.target_valid[0][:, None]
    return torch.cat([feats, identity], -1), iou, batch.valid[0], labelled


def train_selector(train: TrackingSequences, trust: Tensor | None = None, steps: int = 1500,
                   batch_size: int = 2048, hidden: int = 64, lr: float = 3e-3,
                   smooth: int = 15, seed: int = 0) -> Fuser:
    """Fit the IoU regressor on every labelled (frame, tracker) of ``train``; return the fuser.

    Loss: binary cross-entropy of the predicted IoU against the IoU (Adam, ``steps`` minibatches
    of ``batch_size`` boxes drawn uniformly). The fuser averages each tracker's predicted IoU
    over ``smooth`` frames (centred; 1: none) so that the choice does not flicker, and reports
    the chosen tracker's box as it is (NaN if no tracker reported one).

    Args:
        train: Training sequences.
        trust: Optional per-tracker weights (K,) of the features' weighted reference.
        steps: Optimizer steps.
        batch_size: Boxes per step.
        hidden: Width of the MLP's two hidden layers.
        lr: Adam learning rate.
        smooth: Odd moving-average window over frames of the predicted IoU.
        seed: Seed of the initial weights and of the minibatches.
    """
    if steps < 1 or batch_size < 1 or hidden < 1 or smooth < 1 or smooth % 2 == 0:
        raise ValueError(f"Expected steps, batch_size, hidden >= 1 and an odd smooth >= 1; got "
                         f"{steps}, {batch_size}, {hidden}, {smooth}.")
    rows = [selector_inputs(item, trust) for item in train]
    x = torch.cat([r[0][r[3]] for r in rows])
    y = torch.cat([r[1][r[3]] for r in rows])
    if not len(x):
        raise ValueError("`train` has no frame with both a tracker box and valid ground truth.")
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():  # seeded initial weights, the caller's random state untouched
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(NUM_FEATURES + train.num_trackers, hidden), nn.SiLU(),
                            nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))
    optimizer = torch.optim.Adam(net.parameters(), lr)
    for _ in range(steps):
        pick = torch.randint(0, len(x), (batch_size,), generator=generator)
        loss = F.binary_cross_entropy_with_logits(net(x[pick]).squeeze(-1), y[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()

    def fuse(item: TrackerResults) -> Tensor:
        if item.boxes.shape[1] != train.num_trackers:
            raise ShapeError(f"The selector was trained on {train.num_trackers} trackers; "
                             f"sequence {item.sequence!r} has boxes of shape "
                             f"{item.boxes.shape} (T, K, 4).")
        feats, _, valid, _ = selector_inputs(item, trust)
        with torch.no_grad():
            score = torch.sigmoid(net(feats).squeeze(-1))
        if smooth > 1:
            # A masked mean, so that a tracker's missing frames do not drag its average down.
            m = valid.float().T[:, None]
            window = (smooth, 1, smooth // 2)
            score = (F.avg_pool1d((score * valid).T[:, None], *window)
                     / F.avg_pool1d(m, *window).clamp_min(1e-6))[:, 0].T
        best = torch.where(valid, score, -1.0).argmax(-1)
        boxes = torch.from_numpy(item.boxes.copy())
        return boxes[torch.arange(boxes.shape[0]), best]

    return fuse
