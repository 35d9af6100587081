"""The multi-view pose energy over a window of frames: one body per sequence, smooth motion.

Per frame the variables and terms are those of :class:`~lightning_energy.energies.pose.
MultiViewPoseEnergy` (p = L + 5: coefficients, yaw, translation, log scale; robust reprojection
and the priors), each frame with its own mixture component (chosen by a per-frame solve). Over
the window of T frames:

* shared body variables (``body="offset"``): an offset of every joint in the body frame, δ (J, 3),
  the same in every frame (s = 3J). The per-frame energy leaves systematic per-subject offsets of
  the body against its root (2.3–9.1 mm per fold on Human3.6M, the body 23 mm too high on S6),
  the same in every frame of a person: a per-sequence offset is the correction they call for,
  where a bone-length model would miss the offsets that are not along bones. Prior: λ_b‖δ‖²
  (δ in cm);
* a robust temporal smoothness term on each joint's 3D displacement between neighbouring frames,
  ρ_s(w_s‖P_{t+1,j} − P_{t,j}‖ / 10 mm), with learnable weight w_s and kernel scale.

Every weight (the per-frame energy's, w_s, the smoothness kernel's scale, λ_b) is an energy
parameter. The Hessian is block-arrow shaped: solve with
:class:`~lightning_energy.BlockArrowLevenbergMarquardt` and differentiate with
``ImplicitAdjoint(linear_solver=BlockArrow())``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lightning_energy._tree import tree_map
from lightning_energy.energies.pose import MultiViewPoseEnergy, PoseEnergyInputs
from lightning_energy.energies.robust import PseudoHuber, RobustKernel
from lightning_energy.energies.sequence import SequenceLeastSquaresEnergy

_BODIES = ("offset", "none")


@dataclass
class SequencePoseInputs:
    """Per-window data of :class:`SequencePoseEnergy` (leading dimension B windows).

    Attributes:
        frames: The frames' :class:`PoseEnergyInputs`, every tensor shaped (B, T, …) (one
            component per frame in ``component`` (B, T, M)).
        frame_weight: (B, T) 1 for a real frame, 0 for padding: a padded frame's detections are
            left out (its reprojection rows are zeroed); its priors stay, so its variables
            remain determined.
    """

    frames: PoseEnergyInputs
    frame_weight: Tensor

    def flat_frames(self) -> PoseEnergyInputs:
        """The frames' inputs with windows and frames flattened: leading dimension B·T."""
        return tree_map(lambda t: t.flatten(0, 1), self.frames)


_RESIDUAL_METHODS = ("frame_residuals", "pair_residuals", "shared_residuals", "poses",
                     "offsets")
"""What :meth:`SequencePoseEnergy.jacobian_blocks` differentiates in closed form."""
_FRAME_RESIDUAL_METHODS = ("residuals", "derivatives", "pose", "canonical", "project", "cameras")
"""The per-frame energy's methods behind it."""


class SequencePoseEnergy(SequenceLeastSquaresEnergy):
    """Multi-view pose over a window with shared body variables and smoothness (module docstring).

    Args:
        frame_energy: The per-frame energy whose terms and parameters each frame uses (shared
            with a per-frame layer, so both train the same parameters).
        body: ``"offset"`` (shared joint offsets, s = 3J) or ``"none"`` (s = 0).
        smoothness_weight: Initial w_s; 0 drops the smoothness term.
        smoothness_scale: Initial kernel scale of the smoothness term (units of 10 mm).
        body_prior_weight: Initial λ_b of the offsets' prior (per cm²). Untrained, on two S8
            sequences, λ_b = 1 let the offsets follow the detections' biases (63.9 mm MPJPE
            against 46.7 mm without a body), λ_b = 100 did not (48.1 mm).

    Example:
        >>> energy = SequencePoseEnergy(MultiViewPoseEnergy(None, num_components=1))
        >>> energy.frame_size, energy.shared_size
        (11, 51)
    """

    def __init__(self, frame_energy: MultiViewPoseEnergy, body: str = "offset",
                 smoothness_weight: float = 1.0, smoothness_scale: float = 3.0,
                 body_prior_weight: float = 100.0) -> None:
        if body not in _BODIES:
            raise ValueError(f"Expected `body` in {_BODIES}, got {body!r}.")
        if smoothness_weight < 0 or not smoothness_scale > 0 or not body_prior_weight > 0:
            raise ValueError(f"Expected `smoothness_weight` >= 0, `smoothness_scale` > 0 and "
                             f"`body_prior_weight` > 0, got {smoothness_weight}, "
                             f"{smoothness_scale}, {body_prior_weight}.")
        super().__init__(None)
        self.frame = frame_energy
        self.body = body
        self.frame_size = frame_energy.num_bases + 5
        self.shared_size = 3 * frame_energy.num_joints if body == "offset" else 0
        self.use_smoothness = smoothness_weight > 0
        self.log_smoothness = nn.Parameter(torch.tensor(math.log(max(smoothness_weight, 1e-30))))
        self.smoothness_kernel = PseudoHuber(smoothness_scale, learnable=True)
        self.log_body_prior = nn.Parameter(torch.tensor(math.log(body_prior_weight)))

    def offsets(self, shared: Tensor, frames: int) -> Tensor | None:
        """Body offsets (B·T, J, 3), metres, of shared variables (B, s) (None without a body)."""
        if self.shared_size == 0:
            return None
        return shared.reshape(shared.shape[0], 1, -1, 3).expand(-1, frames, -1, -1).flatten(0, 1)

    def poses(self, frames: Tensor, shared: Tensor, inputs: SequencePoseInputs) -> Tensor:
        """World poses (B, T, J, 3), metres."""
        b, t, p = frames.shape
        flat = inputs.flat_frames()
        points = self.frame.pose(frames.reshape(b * t, p), flat.component,
                                 self.offsets(shared, t))
        return points.reshape(b, t, *points.shape[1:])

    def frame_residuals(self, frames: Tensor, shared: Tensor,  # noqa: D102
                        inputs: SequencePoseInputs) -> Tensor:
        b, t, p = frames.shape
        r = self.frame.residuals(frames.reshape(b * t, p), inputs.flat_frames(),
                                 self.offsets(shared, t))
        reprojection = self.frame.num_views * self.frame.num_joints * 2
        real = inputs.frame_weight.to(frames.dtype).reshape(b * t, 1)
        r = torch.cat([real * r[:, :reprojection], r[:, reprojection:]], 1)
        return r.reshape(b, t, -1)

    def pair_residuals(self, frames: Tensor, shared: Tensor,  # noqa: D102
                       inputs: SequencePoseInputs) -> Tensor:
        if not self.use_smoothness:
            return super().pair_residuals(frames, shared, inputs)
        points = self.poses(frames, shared, inputs)
        step = 100.0 * (points[:, 1:] - points[:, :-1])  # metres → units of 10 mm
        return (self.log_smoothness.to(frames.dtype).exp() * step).flatten(2)

    def shared_residuals(self, shared: Tensor, inputs: SequencePoseInputs) -> Tensor:  # noqa: D102
        return (0.5 * self.log_body_prior.to(shared.dtype)).exp() * 100.0 * shared

    def jacobian_blocks(self, x: Tensor, inputs: SequencePoseInputs  # type: ignore[override]
                        ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """Residuals and Jacobian blocks in closed form (see the base class for the layout).

        By the chain rule through the per-frame energy's
        :meth:`~MultiViewPoseEnergy.derivatives`: each joint's rows depend on its own offset
        only, so the offset columns cost a 3 × 3 product per joint instead of 3J forward passes.
        With :meth:`curvature_products` one Gauss–Newton evaluation of 4 windows × 16 frames
        (the recipe's sizes) is 1.8× faster on CPU than the coloured products, 2.4× at 32
        frames (``bench sequence --blocks``, docs/benchmarks.md); the recipe's training step
        2.2× (4 S8 windows, same steps and minima).
        """
        if not self._closed_form(_RESIDUAL_METHODS, _FRAME_RESIDUAL_METHODS):
            return super().jacobian_blocks(x, inputs)
        frames, shared = self.split(x)
        b, t, p = frames.shape
        j, s = self.frame.num_joints, self.shared_size
        d = self.frame.derivatives(frames.reshape(b * t, p), inputs.flat_frames(),
                                   self.offsets(shared, t))
        reprojection = self.frame.num_views * j * 2
        real = inputs.frame_weight.to(x.dtype).reshape(b * t, 1)
        mask = torch.cat([real.expand(-1, reprojection),
                          torch.ones_like(real).expand(-1, d.residuals.shape[1] - reprojection)], 1)
        r_f = (mask * d.residuals).reshape(b, t, -1)
        j_f = (mask[..., None] * d.jacobian).reshape(b, t, -1, p)
        eye = torch.eye(j, dtype=x.dtype, device=x.device)
        if s:
            # Row (view c, joint j, coordinate d), column (joint k, axis e): δ_jk (∂r/∂P_j · A)_de.
            per_joint = d.reprojection_world @ d.body_to_world[:, None, None]  # (BT, C, J, 2, 3)
            j_fs = torch.einsum("bcjde,jk->bcjdke", per_joint, eye).reshape(b * t, reprojection, s)
            j_fs = torch.cat([real[..., None] * j_fs,
                              j_fs.new_zeros(b * t, d.residuals.shape[1] - reprojection, s)], 1)
        else:
            j_fs = x.new_zeros(b * t, d.residuals.shape[1], 0)
        j_fs = j_fs.reshape(b, t, d.residuals.shape[1], s)
        r_q = self.pair_residuals(frames, shared, inputs)
        if self.use_smoothness:
            # q_t = 100 w (P_{t+1} − P_t), P in metres = world (mm) / 1000.
            w = 0.1 * self.log_smoothness.to(x.dtype).exp()
            world = d.world.reshape(b, t, 3 * j, p)
            j_a, j_b = -w * world[:, :-1], w * world[:, 1:]
            j_qs = x.new_zeros(b, t - 1, 3 * j, 0)
            if s:
                body = d.body_to_world.reshape(b, t, 3, 3)
                step = w * (body[:, 1:] - body[:, :-1])  # (B, T − 1, 3, 3)
                j_qs = torch.einsum("btde,jk->btjdke", step, eye).reshape(b, t - 1, 3 * j, s)
        else:
            j_a = j_b = x.new_zeros(b, t - 1, 0, p)
            j_qs = x.new_zeros(b, t - 1, 0, s)
        r_u = self.shared_residuals(shared, inputs)
        prior = (0.5 * self.log_body_prior.to(x.dtype)).exp() * 100.0
        j_u = prior * torch.eye(s, dtype=x.dtype, device=x.device).expand(b, s, s)
        return (r_f, r_q, r_u), (j_f, j_fs, j_a, j_b, j_qs, j_u)

    def _split_squared(self, squared: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Frame rows (B·T, m_f), pair rows (B, (T − 1)·J, 3) and shared rows of (B, m)."""
        m_f = self.frame.num_views * self.frame.num_joints * 2 + self.frame.num_bases + 1
        m_q = 3 * self.frame.num_joints if self.use_smoothness else 0
        t, rest = divmod(squared.shape[1] - self.shared_size + m_q, m_f + m_q)
        if rest or t < 1:
            raise ValueError(f"Expected residuals of T·{m_f} + (T − 1)·{m_q} + "
                             f"{self.shared_size} entries, got {squared.shape[1]}.")
        sizes = [t * m_f, (t - 1) * m_q, self.shared_size]
        f, q, u = torch.split(squared, sizes, dim=1)
        return f.reshape(-1, m_f), q.reshape(q.shape[0], -1, 3), u

    def rho(self, squared: Tensor) -> Tensor:
        """The frame energy's kernel on its rows, pseudo-Huber on each joint's displacement."""
        f, q, u = self._split_squared(squared)
        joint = q.sum(-1, keepdim=True).expand_as(q)
        smooth = self.smoothness_kernel(joint) / 3  # spread over the joint's three rows
        return torch.cat([self.frame.rho(f).reshape(squared.shape[0], -1),
                          smooth.flatten(1), u], 1)

    def weights(self, squared: Tensor) -> Tensor:
        """IRLS weights matching :meth:`rho` (ρ' of each joint's displacement on its rows)."""
        f, q, u = self._split_squared(squared)
        joint = q.sum(-1, keepdim=True).expand_as(q)
        return torch.cat([self.frame.weights(f).reshape(squared.shape[0], -1),
                          self.smoothness_kernel.weight(joint).flatten(1), torch.ones_like(u)], 1)

    def curvature_products(self, r: Tensor, tangents: Tensor) -> Tensor:
        """M v in closed form: each kernel acts on one group's squared norm ‖r_g‖².

        For ½ρ(‖r_g‖²) on a group (a joint's 2D residual in one view, a joint's 3D step),
        ∂(ρ'r_g)/∂r_g = ρ' I + 2ρ'' r_g r_gᵀ; the prior rows have M = I. A subclass that
        overrides ``rho`` or ``weights`` (or a frame energy that does) gets the base class's
        forward-mode products instead, as :meth:`jacobian_blocks` does for the residuals.
        """
        if not self._closed_form(("rho", "weights"), ("rho", "weights")):
            return super().curvature_products(r, tangents)
        frame = self.frame
        reprojection = frame.num_views * frame.num_joints * 2
        m_f = reprojection + frame.num_bases + 1
        m_q = 3 * frame.num_joints if self.use_smoothness else 0
        t = (r.shape[1] - self.shared_size + m_q) // (m_f + m_q)
        b, k = r.shape[0], tangents.shape[0]
        r_f, r_q, _ = torch.split(r, [t * m_f, (t - 1) * m_q, self.shared_size], 1)
        v_f, v_q, v_u = torch.split(tangents, [t * m_f, (t - 1) * m_q, self.shared_size], 2)
        r_f, v_f = r_f.reshape(b, t, m_f), v_f.reshape(k, b, t, m_f)
        out_f = torch.cat([
            _grouped(frame.kernel, r_f[..., :reprojection].reshape(b, t, -1, 2),
                     v_f[..., :reprojection].reshape(k, b, t, -1, 2)).reshape(k, b, t, -1),
            v_f[..., reprojection:],
        ], -1)  # fmt: skip
        out_q = _grouped(self.smoothness_kernel, r_q.reshape(b, -1, 3), v_q.reshape(k, b, -1, 3))
        return torch.cat([out_f.flatten(2), out_q.flatten(2), v_u], 2)

    def _closed_form(self, own: tuple[str, ...], frame: tuple[str, ...]) -> bool:
        """Whether the closed forms apply (``closed_form_jacobian`` on, no overrides).

        Methods ``own`` of this energy and ``frame`` of the frame energy must be this module's
        and :class:`MultiViewPoseEnergy`'s, not a subclass's.
        """
        return (self.closed_form_jacobian
                and all(getattr(type(self), n) is getattr(SequencePoseEnergy, n) for n in own)
                and all(getattr(type(self.frame), n) is getattr(MultiViewPoseEnergy, n)
                        for n in frame))

    def initial_solution(self, inputs: SequencePoseInputs) -> Tensor:
        """Each frame from its DLT triangulation, no body offset.

        See :meth:`MultiViewPoseEnergy.initial_solution`.
        """
        b, t = inputs.frame_weight.shape
        frames = self.frame.initial_solution(inputs.flat_frames()).reshape(b, t * self.frame_size)
        return torch.cat([frames, frames.new_zeros(b, self.shared_size)], 1)


def _grouped(kernel: RobustKernel, r: Tensor, v: Tensor) -> Tensor:
    """(ρ'(‖r_g‖²) I + 2ρ''(‖r_g‖²) r_g r_gᵀ) v_g per group (last axis) of r (…) and v (k, …)."""
    squared = (r * r).sum(-1, keepdim=True)
    return (kernel.weight(squared) * v
            + 2 * kernel.weight_derivative(squared) * r * (r * v).sum(-1, keepdim=True))
