"""Tracker fusion: a robust, smooth track through the boxes of K trackers.

State of frame t: ``x_t = ((cx − o_x)/S, (cy − o_y)/S, log(w/S), log(h/S))``, with (o, S) a
per-window origin and scale (:class:`BoxFrame`). Errors are measured in units of the box size:
centre residuals are multiplied by ``a_t = S / s_t`` with s_t the size √(wh) of the robust
consensus (the coordinate-wise median of the trackers) on frame t; log-size residuals are relative
already. With e_tk = a_t ⊙ (x_t − y_tk)::

    E(x) = ½ Σₜₖ wₜₖ Σ_c ρ_δ(e²_tkc) + ½ Σₜ α ⊙ ‖a_t (x_t − x_{t−1})‖²
         + ½ Σₜ β ⊙ ‖a_t (x_{t+1} − 2x_t + x_{t−1})‖² + ½ ε Σₜ ‖a_t (x_t − r_t)‖²,

with wₜₖ = mₜₖ exp(b_k + ℓₜₖ) (mask m, per-tracker base log-weight b, per-frame log-weight ℓ from
the tracker-feature network), α, β per coordinate group (centre, size), a robust kernel ρ_δ with
learnable δ, and a tiny prior ε towards the consensus r (keeps frames with no tracker well posed).
(Robust smoothness terms were tried and measured no gain: docs/notes/tracking-rounds.md, round 4.)

The four coordinates decouple and each one's Hessian (and IRLS matrix) is pentadiagonal in t
(block-tridiagonal with the first-order term only); :meth:`TrackFusionEnergy.irls_system` and
:meth:`TrackFusionEnergy.hessian_bands` return the bands, which
:class:`~lightning_energy.solvers.BandedIRLS` and ``ImplicitAdjoint(linear_solver=Banded())``
exploit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lightning_energy.energies.base import LeastSquaresEnergy
from lightning_energy.energies.robust import Cauchy, RobustKernel
from lightning_energy.errors import ShapeError, describe

_TINY = 1e-12


@dataclass
class TrackFusionInputs:
    """Energy inputs for B windows of T frames and K trackers (normalised states).

    Attributes:
        obs: Tracker states (B, T, K, 4); the consensus where the tracker has no box.
        mask: Bool (B, T, K): the tracker reported a usable box.
        logit: Per-frame log-weight offsets ℓ (B, T, K) (zeros without a network).
        scale: Residual scale factors (B, T, 4): ``[a_t, a_t, 1, 1]``.
        reference: Robust consensus states r (B, T, 4); the solver's starting point.
    """

    obs: Tensor
    mask: Tensor
    logit: Tensor
    scale: Tensor
    reference: Tensor


@dataclass
class BoxFrame:
    """Per-window origin ``o`` (B, 2) and scale ``S`` (B,) of the normalised state, in pixels."""

    origin: Tensor
    size: Tensor

    def to_state(self, boxes: Tensor) -> Tensor:
        """Pixel boxes ``(x, y, w, h)`` (B, T, ..., 4) → states (B, T, ..., 4)."""
        extra = boxes.dim() - 2
        o = self.origin.reshape(-1, *([1] * extra), 2)
        s = self.size.reshape(-1, *([1] * extra), 1)
        wh = boxes[..., 2:].clamp_min(1e-6)
        centre = (boxes[..., :2] + 0.5 * wh - o) / s
        return torch.cat([centre, torch.log(wh / s)], -1)

    def to_boxes(self, state: Tensor) -> Tensor:
        """States (B, T, 4) → pixel boxes ``(x, y, w, h)`` (B, T, 4), differentiably."""
        o, s = self.origin[:, None], self.size[:, None, None]
        wh = s * torch.exp(state[..., 2:])
        centre = o + s * state[..., :2]
        return torch.cat([centre - 0.5 * wh, wh], -1)


def _forward_fill(values: Tensor, ok: Tensor) -> Tensor:
    """Replace rows where ``ok`` (B, T) is False by the last good row (the first good before it)."""
    t = torch.arange(values.shape[1], device=values.device).expand_as(ok)
    last = torch.where(ok, t, -1).cummax(1).values
    first = torch.where(ok, t, values.shape[1]).min(1, keepdim=True).values
    index = torch.where(last < 0, first, last).clamp(max=values.shape[1] - 1)
    filled = values.gather(1, index[..., None].expand_as(values))
    return torch.where(ok.any(1)[:, None, None], filled, torch.zeros_like(filled))


def consensus_boxes(boxes: Tensor, valid: Tensor) -> Tensor:
    """Coordinate-wise median of centre and log-size over valid trackers, as pixel boxes.

    Args:
        boxes: Tracker boxes ``(x, y, w, h)`` (B, T, K, 4).
        valid: Bool (B, T, K).

    Returns:
        Boxes (B, T, 4); frames without any tracker take the previous frame's consensus.
    """
    wh = boxes[..., 2:].clamp_min(1e-6)
    state = torch.cat([boxes[..., :2] + 0.5 * wh, torch.log(wh)], -1)
    state = torch.where(valid[..., None], state, torch.nan)
    median = state.nanmedian(2).values
    median = _forward_fill(torch.nan_to_num(median), valid.any(-1))
    size = torch.exp(median[..., 2:])
    return torch.cat([median[..., :2] - 0.5 * size, size], -1)


def fusion_inputs(
    boxes: Tensor, valid: Tensor, frame_valid: Tensor, logit: Tensor | None = None
) -> tuple[TrackFusionInputs, BoxFrame]:
    """Normalise raw tracker boxes into :class:`TrackFusionInputs` and their :class:`BoxFrame`.

    Args:
        boxes: Tracker boxes ``(x, y, w, h)`` in pixels (B, T, K, 4); anything where invalid.
        valid: Bool (B, T, K).
        frame_valid: Bool (B, T), False on padding (its trackers are masked too).
        logit: Optional per-frame log-weight offsets (B, T, K).

    Returns:
        The energy inputs and the frame to map states back to pixel boxes.
    """
    if boxes.dim() != 4 or boxes.shape[-1] != 4 or valid.shape != boxes.shape[:3]:
        raise ShapeError(f"Expected `boxes` (B, T, K, 4) and `valid` (B, T, K), got "
                         f"{describe(boxes)} and {describe(valid)}.")
    mask = valid & frame_valid[..., None]
    consensus = consensus_boxes(boxes, mask)
    size = torch.sqrt(consensus[..., 2] * consensus[..., 3])  # (B, T)
    real = frame_valid & mask.any(-1)
    ref_size = torch.where(real, size, torch.nan).nanmedian(1).values
    ref_size = torch.nan_to_num(ref_size, nan=1.0).clamp_min(1e-3)
    frame = BoxFrame(consensus[:, 0, :2] + 0.5 * consensus[:, 0, 2:], ref_size)
    reference = frame.to_state(consensus)
    obs = torch.where(mask[..., None], frame.to_state(boxes), reference[:, :, None])
    a = (ref_size[:, None] / size.clamp_min(1e-3))[..., None]
    scale = torch.cat([a, a, torch.ones_like(a), torch.ones_like(a)], -1)
    logit = torch.zeros_like(mask, dtype=boxes.dtype) if logit is None else logit
    return TrackFusionInputs(obs, mask, logit, scale, reference), frame


def weighted_median(values: Tensor, weights: Tensor) -> Tensor:
    """Per-coordinate weighted median over the tracker axis.

    Args:
        values: States (B, T, K, C).
        weights: Non-negative weights (B, T, K); a frame whose weights are all zero gets the
            smallest value (callers fill such frames with the consensus beforehand).

    Returns:
        Medians (B, T, C): the smallest value whose cumulative weight reaches half the total.
    """
    ordered, index = values.sort(dim=2)
    cum = weights[..., None].expand_as(values).gather(2, index).cumsum(2)
    position = (cum < 0.5 * cum[:, :, -1:]).sum(2, keepdim=True)
    return ordered.gather(2, position.clamp(max=values.shape[2] - 1)).squeeze(2)


def _group(values: Tensor) -> Tensor:
    """Per-coordinate-group values (2,) → per-coordinate (4,): centre, centre, size, size."""
    return values.repeat_interleave(2)


class TrackFusionEnergy(LeastSquaresEnergy):
    """Robust smoothing fusion energy of K trackers (see the module docstring).

    Residuals (B, m) are ``√(w ρ_δ(e²)/e²)·e`` per tracker, frame and coordinate (so ½Σr² is
    exactly the robust energy and Gauss–Newton on them is the square-rooted robust cost), then the
    smoothness and prior residuals. The solution is x of shape (B, T, 4) for any T.

    Args:
        num_trackers: K, the length of the per-tracker base weights.
        alpha: First-order smoothness (centre, size) at initialisation.
        beta: Second-order smoothness (centre, size) at initialisation.
        kernel: Robust kernel ρ_δ on the normalised errors (default Cauchy, δ = 0.3, learnable).
        tracker_weights: Initial per-tracker weights w_k (default 1), exp(b_k).
        prior: ε, weight of the prior towards the consensus (fixed).
        learn_smoothness: Learn α and β (and δ when the kernel is learnable).
        learn_tracker_weights: Learn the per-tracker base weights.
        weighted_start: Start the solver at the w-weighted median instead of the consensus.

    Example:
        >>> import torch
        >>> boxes = torch.rand(2, 6, 3, 4) * 10 + 20
        >>> valid = torch.ones(2, 6, 3, dtype=torch.bool)
        >>> inputs, frame = fusion_inputs(boxes, valid, torch.ones(2, 6, dtype=torch.bool))
        >>> TrackFusionEnergy(3)(inputs.reference, inputs).shape
        torch.Size([2])
    """

    prior: Tensor

    def __init__(
        self,
        num_trackers: int,
        alpha: tuple[float, float] = (1.0, 10.0),
        beta: tuple[float, float] = (1.0, 1.0),
        kernel: RobustKernel | None = None,
        tracker_weights: list[float] | None = None,
        prior: float = 1e-3,
        learn_smoothness: bool = True,
        learn_tracker_weights: bool = True,
        weighted_start: bool = True,
    ) -> None:
        super().__init__(None)
        if num_trackers < 1:
            raise ValueError(f"Expected `num_trackers` >= 1, got {num_trackers}.")
        if min(*alpha, *beta) <= 0 or prior <= 0:
            raise ValueError(
                f"Expected `alpha`, `beta`, `prior` > 0, got {alpha}, {beta}, {prior}.")
        weights = torch.ones(num_trackers) if tracker_weights is None else torch.tensor(
            tracker_weights, dtype=torch.float32)
        if weights.shape != (num_trackers,) or bool((weights <= 0).any()):
            raise ValueError(f"Expected `tracker_weights`: {num_trackers} positive numbers, "
                             f"got {tracker_weights}.")
        self.num_trackers = num_trackers
        self.robust = kernel if kernel is not None else Cauchy(0.3, learnable=True)
        self.log_alpha = nn.Parameter(torch.tensor(alpha).log())
        self.log_beta = nn.Parameter(torch.tensor(beta).log())
        self.log_tracker_weight = nn.Parameter(weights.log())
        self.register_buffer("prior", torch.tensor(float(prior)))
        self.log_alpha.requires_grad_(learn_smoothness)
        self.log_beta.requires_grad_(learn_smoothness)
        if isinstance(self.robust.log_scale, nn.Parameter):
            self.robust.log_scale.requires_grad_(learn_smoothness)
        self.log_tracker_weight.requires_grad_(learn_tracker_weights)
        self.weighted_start = weighted_start

    def initial_solution(self, inputs: TrackFusionInputs) -> Tensor:
        """Starting point (B, T, 4): the weighted median, or the plain consensus.

        With ``weighted_start`` the per-coordinate median of the trackers weighted by w (the
        minimiser of the data term as δ → 0): a redescending kernel keeps IRLS near the mode it
        starts from, and the unweighted median of many weak trackers can sit on the wrong one.
        """
        if not self.weighted_start:
            return inputs.reference
        with torch.no_grad():
            return weighted_median(inputs.obs, self.tracker_weights(inputs) ** 2)

    def _check(self, x: Tensor, inputs: TrackFusionInputs) -> None:
        b, t, k, _ = inputs.obs.shape
        if k != self.num_trackers:
            raise ShapeError(f"Expected `inputs.obs` with K={self.num_trackers} trackers "
                             f"(`num_trackers`), got {describe(inputs.obs)}.")
        if x.shape != (b, t, 4):
            raise ShapeError(f"Expected `x` of shape ({b}, {t}, 4), got {describe(x)}.")

    def tracker_weights(self, inputs: TrackFusionInputs) -> Tensor:
        """√w (B, T, K): masked, exp(½(b_k + ℓ_tk)) (no square root of zero)."""
        log_w = self.log_tracker_weight + inputs.logit
        return torch.where(inputs.mask, torch.exp(0.5 * log_w), 0.0)

    def robust_ratio(self, squared: Tensor) -> Tensor:
        """ρ_δ(s)/s (→ 1 as s → 0), same shape as ``squared``."""
        s = squared.clamp_min(_TINY)
        return self.robust(s) / s

    def residuals(self, x: Tensor, inputs: TrackFusionInputs) -> Tensor:  # noqa: D102
        x = x.reshape(inputs.reference.shape)
        self._check(x, inputs)
        scale = inputs.scale
        err = (x[:, :, None] - inputs.obs) * scale[:, :, None]
        data = err * torch.sqrt(self.robust_ratio(err**2)) * self.tracker_weights(inputs)[..., None]
        alpha, beta = _group(self.log_alpha.exp()), _group(self.log_beta.exp())
        first, second = self._differences(x, scale)
        first = first * torch.sqrt(alpha)
        second = second * torch.sqrt(beta)
        prior = (x - inputs.reference) * scale * self.prior.sqrt()
        parts = [data, first, second, prior]
        return torch.cat([p.reshape(x.shape[0], -1) for p in parts], -1)

    @staticmethod
    def _differences(x: Tensor, scale: Tensor) -> tuple[Tensor, Tensor]:
        """Normalised first (B, T−1, 4) and second (B, T−2, 4) differences of x (B, T, 4)."""
        first = (x[:, 1:] - x[:, :-1]) * scale[:, 1:]
        second = (x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]) * scale[:, 1:-1]
        return first, second

    @staticmethod
    def _smoothness_curvature(inputs: TrackFusionInputs, alpha: Tensor,
                              beta: Tensor) -> tuple[Tensor, Tensor]:
        """Per-pair (B, T−1, 4) and per-triple (B, T−2, 4) curvatures α a² and β a²."""
        a2 = inputs.scale**2
        return _group(alpha) * a2[:, 1:], _group(beta) * a2[:, 1:-1]

    @staticmethod
    def _smoothness_bands(c1: Tensor, c2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Bands d0, d1, d2 (B, T, 4) of Σ c1 (Δx)² + Σ c2 (Δ²x)², per coordinate.

        Δx = x_t − x_{t−1} with c1 (B, T−1, 4) per pair; Δ²x = x_{t+1} − 2x_t + x_{t−1} with c2
        (B, T−2, 4) per triple.
        """
        zero1 = c1.new_zeros(c1.shape[0], 1, c1.shape[2])
        d0 = torch.cat([c1, zero1], 1) + torch.cat([zero1, c1], 1)
        d1 = torch.cat([-c1, zero1], 1)
        if c2.shape[1] >= 1:
            zero2 = torch.cat([zero1, zero1], 1)
            d0 = d0 + torch.cat([c2, zero2], 1) + 4 * torch.cat([zero1, c2, zero1], 1)
            d0 = d0 + torch.cat([zero2, c2], 1)
            d1 = d1 - 2 * torch.cat([c2, zero2], 1) - 2 * torch.cat([zero1, c2, zero1], 1)
            d2 = torch.cat([c2, zero2], 1)
        else:
            d2 = torch.zeros_like(d0)
        return d0, d1, d2

    def irls_system(self, x: Tensor,
                    inputs: TrackFusionInputs) -> tuple[Tensor, Tensor, Tensor]:
        """Energies (B,) and the IRLS system at ``x`` (B, T, 4): bands (B, 4, 3, T), rhs (B, 4, T).

        Band 0 is the diagonal, band j holds the entries (t, t + j) at index t (zero-padded at
        the end). IRLS weights are w ρ'_δ(e²) a² per tracker, so the system's solution is the
        majorise–minimise step (monotone for the concave-in-s kernels of ``energies.robust``).
        The energy comes from the same errors (a solver step needs both; computing it through
        :meth:`residuals` cost as much again).
        """
        x = x.reshape(inputs.reference.shape)
        self._check(x, inputs)
        a2 = inputs.scale**2  # (B, T, 4)
        err = (x[:, :, None] - inputs.obs) * inputs.scale[:, :, None]
        s = err**2
        trust = self.tracker_weights(inputs)[..., None] ** 2
        alpha, beta = self.log_alpha.exp(), self.log_beta.exp()
        first, second = self._differences(x, inputs.scale)
        value = 0.5 * ((trust * self.robust(s)).sum((1, 2, 3))
                       + (_group(alpha) * first**2).sum((1, 2))
                       + (_group(beta) * second**2).sum((1, 2))
                       + (self.prior * a2 * (x - inputs.reference) ** 2).sum((1, 2)))
        w = trust * self.robust.weight(s) * a2[:, :, None]  # (B, T, K, 4)
        prior = self.prior * a2
        rhs = (w * inputs.obs).sum(2) + prior * inputs.reference
        d0, d1, d2 = self._smoothness_bands(*self._smoothness_curvature(inputs, alpha, beta))
        bands = torch.stack([d0 + w.sum(2) + prior, d1, d2], 1).permute(0, 3, 1, 2)
        return value, bands, rhs.permute(0, 2, 1)

    def hessian_bands(self, x: Tensor, inputs: TrackFusionInputs,
                      irls_bands: Tensor | None = None) -> Tensor:
        """Exact Hessian ∇²ₓE at ``x`` (B, T, 4) as bands (B, 4, 3, T) (see :meth:`irls_system`).

        The data term's curvature per residual is w a² (ρ'(s) + 2s ρ''(s)), s = e², which is
        negative for outliers of a redescending kernel; ρ'' is the derivative of the kernel's
        IRLS weight (:meth:`~lightning_energy.robust.RobustKernel.weight_derivative`). The
        Hessian is the IRLS bands plus that diagonal correction: pass ``irls_bands`` when they
        are at hand (a solver step has them) to skip recomputing them.
        """
        bands = self.irls_system(x, inputs)[1] if irls_bands is None else irls_bands
        x = x.reshape(inputs.reference.shape)
        err = (x[:, :, None] - inputs.obs) * inputs.scale[:, :, None]
        s = err**2
        rho2 = self.robust.weight_derivative(s)
        w = self.tracker_weights(inputs)[..., None] ** 2 * inputs.scale[:, :, None] ** 2
        correction = (w * 2 * s * rho2).sum(2).permute(0, 2, 1)  # (B, 4, T)
        return torch.cat([bands[:, :, :1] + correction[:, :, None], bands[:, :, 1:]], 2)


def default_tracker_weights(aucs: list[float], temperature: float = 0.05) -> list[float]:
    """Hand-set per-tracker weights from training success AUCs: exp((AUC − max)/temperature)."""
    best = max(aucs)
    return [math.exp((a - best) / temperature) for a in aucs]
