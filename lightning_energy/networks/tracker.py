"""The tracker-feature network: per-frame confidence of each tracker from how its box behaves."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_energy.energies.tracking import TrackFusionInputs, weighted_median
from lightning_energy.errors import ShapeError, describe

NUM_FEATURES = 12
"""Length of the hand-made feature vector of :func:`tracker_features`."""

DILATIONS = (1, 4)
"""Default dilations of the temporal convolutions: ±10 frames with kernel 5."""


def _temporal_mean(values: Tensor, mask: Tensor, width: int) -> Tensor:
    """Masked moving average over T of ``values`` (B, T, K) with a window of ``width`` frames."""
    b, t, k = values.shape
    kernel = torch.ones(1, 1, width, dtype=values.dtype, device=values.device)

    def smooth(v: Tensor) -> Tensor:
        flat = v.permute(0, 2, 1).reshape(b * k, 1, t)
        out = F.conv1d(flat, kernel, padding=width // 2)[..., :t]
        return out.reshape(b, k, t).permute(0, 2, 1)

    m = mask.to(values.dtype)
    return smooth(values * m) / smooth(m).clamp_min(1.0)


def _agreement(dev: Tensor, mask: Tensor, bandwidth: float, trust: Tensor | None = None) -> Tensor:
    """Kernel-weighted share of the other valid trackers within ``bandwidth`` (B, T, K).

    ``trust`` (K,) weighs the other trackers (default all 1): agreeing with a strong tracker then
    counts more than agreeing with a crowd of weak ones.
    """
    diff = dev[:, :, :, None] - dev[:, :, None, :]  # (B, T, K, K, 4)
    close = torch.exp(-(diff**2).sum(-1) / bandwidth**2)
    others = (mask[:, :, None, :] & ~torch.eye(mask.shape[-1], dtype=torch.bool,
                                                device=mask.device)).to(dev.dtype)
    if trust is not None:
        others = others * trust.to(dev.dtype)
    # A share in [0, 1]; 0 when no other tracker reports (numerator and total both 0).
    return (close * others).sum(-1) / others.sum(-1).clamp_min(1e-12)


def tracker_features(inputs: TrackFusionInputs, width: int = 9,
                     trust: Tensor | None = None) -> Tensor:
    """Per-frame, per-tracker features (B, T, K, :data:`NUM_FEATURES`), all in box-size units.

    Distance to the reference track (centre, size, and a log of the total, clipped), agreement
    with the other trackers at two bandwidths, motion and size change since the previous frame,
    the share of trackers reporting on the frame, and moving averages (``width`` frames) of the
    reference distance and of the agreement. Zeros where the tracker has no box.

    The reference is the unweighted robust consensus ``inputs.reference``, or, with ``trust``,
    the ``trust``-weighted per-coordinate median of the trackers (and agreement is weighted by
    the others' trust): with many weak trackers (OTB: 25, "median of all" far below "median of
    the top 5") the unweighted consensus is a poor yardstick.

    Args:
        inputs: Fusion inputs with ``obs`` (B, T, K, 4), ``mask`` (B, T, K), ``scale`` (B, T, 4),
            ``reference`` (B, T, 4).
        width: Moving-average window in frames.
        trust: Optional non-negative per-tracker weights (K,), e.g. the energy's base weights;
            no gradient flows through them.
    """
    scale, mask = inputs.scale[:, :, None], inputs.mask
    reference = inputs.reference
    if trust is not None:
        trust = trust.detach()
        weights = torch.where(mask, trust.to(inputs.obs.dtype), 0.0)
        anchored = weighted_median(inputs.obs.detach(), weights)
        # Frames without any tracker keep the consensus (weighted_median is undefined there).
        reference = torch.where(mask.any(-1, keepdim=True), anchored, reference)
    dev = (inputs.obs - reference[:, :, None]) * scale
    centre = dev[..., :2].norm(dim=-1).clamp(max=5.0)
    size = dev[..., 2:].norm(dim=-1).clamp(max=3.0)
    total = torch.log1p(dev.norm(dim=-1))
    near, far = _agreement(dev, mask, 0.1, trust), _agreement(dev, mask, 0.5, trust)
    step = (inputs.obs[:, 1:] - inputs.obs[:, :-1]) * scale[:, 1:]
    both = mask[:, 1:] & mask[:, :-1]
    motion = torch.where(both, step[..., :2].norm(dim=-1), 0.0).clamp(max=5.0)
    resize = torch.where(both, step[..., 2:].norm(dim=-1), 0.0).clamp(max=3.0)
    pad = torch.zeros_like(motion[:, :1])
    motion, resize = torch.cat([pad, motion], 1), torch.cat([pad, resize], 1)
    share = mask.to(dev.dtype).mean(-1, keepdim=True).expand_as(centre)
    avg_total = _temporal_mean(total, mask, width)
    avg_near = _temporal_mean(near, mask, width)
    avg_far = _temporal_mean(far, mask, 4 * width + 1)
    feats = torch.stack([centre, size, total, near, far, motion, resize, share, avg_total,
                         avg_near, avg_far, mask.to(dev.dtype)], -1)
    return torch.where(mask[..., None], feats, 0.0)


class TemporalMixer(nn.Module):
    """Residual dilated temporal convolutions over each tracker's hidden features along T.

    Gives the per-frame weights a receptive field of 1 + (kernel − 1)·Σ dilations frames (both
    directions: fusion is offline), e.g. to notice a tracker that drifted away a while ago and
    has not come back. Zero padding at the ends, so any T works (windows and whole sequences).

    Args:
        hidden: Channel width.
        kernel: Odd kernel size in frames.
        dilations: One residual block per dilation.
    """

    def __init__(self, hidden: int, kernel: int, dilations: tuple[int, ...] = DILATIONS) -> None:
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"Expected an odd `kernel` >= 1, got {kernel}.")
        if not dilations or min(dilations) < 1:
            raise ValueError(f"Expected non-empty `dilations` of integers >= 1, got {dilations}.")
        self.convs = nn.ModuleList(
            nn.Conv1d(hidden, hidden, kernel, padding=d * (kernel // 2), dilation=d)
            for d in dilations)

    def forward(self, hidden: Tensor) -> Tensor:
        """Hidden features (B, T, K, H) → mixed features of the same shape."""
        b, t, k, h = hidden.shape
        flat = hidden.permute(0, 2, 3, 1).reshape(b * k, h, t)
        for conv in self.convs:
            flat = flat + F.silu(conv(flat))
        return flat.reshape(b, k, h, t).permute(0, 3, 1, 2)


class TrackerFeatureNet(nn.Module):
    """Features of :func:`tracker_features` + a tracker-identity embedding → log-weights ℓ.

    Output ℓ (B, T, K) is bounded to (−``bound``, ``bound``) by a scaled tanh and is exactly 0
    at initialisation (last layer zero), so training starts from the energy's base weights.
    Per frame an MLP (``mlp``); with ``temporal`` > 0 a :class:`TemporalMixer` sits after its
    first hidden layer, so each frame's weight also sees the neighbouring frames.

    Args:
        num_trackers: K, the number of identity embeddings.
        embedding: Embedding width (0 disables the identity embedding).
        hidden: Hidden width of the MLP.
        bound: Largest |ℓ|.
        width: Moving-average window of the features, in frames.
        weighted_reference: Measure the features against the trust-weighted median of the
            trackers (``trust`` of :meth:`forward`, the energy's base weights in
            :class:`~lightning_energy.tasks.tracking.TrackerFusionTask`) instead of the
            unweighted consensus; see :func:`tracker_features`.
        temporal: Kernel size of the temporal convolutions (0: per-frame MLP only).
        dilations: One residual temporal convolution per dilation (with ``temporal`` > 0); the
            receptive field is 1 + (``temporal`` − 1)·Σ ``dilations`` frames.

    Example:
        >>> import torch
        >>> from lightning_energy.energies.tracking import fusion_inputs
        >>> boxes = torch.rand(2, 10, 3, 4) * 10 + 20
        >>> inputs, _ = fusion_inputs(boxes, torch.ones(2, 10, 3, dtype=torch.bool),
        ...                           torch.ones(2, 10, dtype=torch.bool))
        >>> TrackerFeatureNet(3)(inputs).shape
        torch.Size([2, 10, 3])
        >>> TrackerFeatureNet(3, weighted_reference=True, temporal=5)(
        ...     inputs, trust=torch.tensor([1.0, 0.5, 0.1])).shape
        torch.Size([2, 10, 3])
    """

    def __init__(self, num_trackers: int, embedding: int = 4, hidden: int = 32,
                 bound: float = 4.0, width: int = 9, weighted_reference: bool = False,
                 temporal: int = 0, dilations: tuple[int, ...] = DILATIONS) -> None:
        super().__init__()
        if num_trackers < 1 or embedding < 0 or hidden < 1 or bound <= 0 or temporal < 0:
            raise ValueError(f"Expected num_trackers, hidden >= 1, embedding, temporal >= 0, "
                             f"bound > 0; got {num_trackers}, {hidden}, {embedding}, "
                             f"{temporal}, {bound}.")
        self.num_trackers, self.bound, self.width = num_trackers, bound, width
        self.weighted_reference = weighted_reference
        self.embedding = nn.Embedding(num_trackers, embedding) if embedding else None
        last = nn.Linear(hidden, 1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.mlp = nn.Sequential(nn.Linear(NUM_FEATURES + embedding, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), last)
        self.temporal = TemporalMixer(hidden, temporal, tuple(dilations)) if temporal else None

    def forward(self, inputs: TrackFusionInputs, trust: Tensor | None = None) -> Tensor:
        """Log-weight offsets ℓ (B, T, K) for fusion inputs with K = ``num_trackers``.

        Args:
            inputs: Fusion inputs (``obs`` (B, T, K, 4), ...).
            trust: Per-tracker weights (K,) for ``weighted_reference`` (ignored otherwise;
                required then).
        """
        b, t, k, _ = inputs.obs.shape
        if k != self.num_trackers:
            raise ShapeError(f"Expected `inputs.obs` with K={self.num_trackers} trackers "
                             f"(`num_trackers`), got {describe(inputs.obs)}.")
        if self.weighted_reference and trust is None:
            raise ValueError("`weighted_reference=True` needs the per-tracker `trust` weights.")
        feats = tracker_features(inputs, self.width, trust if self.weighted_reference else None)
        if self.embedding is not None:
            ids = self.embedding.weight.to(feats.dtype)[None, None].expand(b, t, k, -1)
            feats = torch.cat([feats, ids], -1)
        hidden = self.mlp[:2](feats)
        if self.temporal is not None:
            hidden = self.temporal(hidden)
        raw = self.mlp[2:](hidden).squeeze(-1)
        return self.bound * torch.tanh(raw / self.bound)
