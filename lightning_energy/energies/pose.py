"""The multi-view PPCA pose energy (Tome et al.; learned end to end as in Toso et al. 2019).

Per frame and mixture component m the solution is x = (z (L), yaw, t (3), log s), n = L + 5:

* z: basis coefficients in units of their prior standard deviation (a_l = z_l · std_l, so the
  Gaussian prior is simply ‖z‖²; this is the same energy as λ Σ a_l² σ_l², better conditioned);
* yaw: rotation about the world's vertical (z) axis, radians;
* t: translation of the pose centroid, metres, world frame;
* log s: log of a per-frame scale of the pose.

The pose is P(x) = s·e^{s₀}·R(yaw)(μ_m + Σ_l z_l std_ml e_ml) + t (metres), and the energy

    E(x) = Σ_c Σ_j ρ_δ(‖ω_cj v_cj (π_c(P_j) − u_cj) / p‖²) + λ‖z‖² + λ_s (log s)²

(each term halved, as in :class:`~lightning_energy.LeastSquaresEnergy`), with π_c the calibrated
camera (pinhole on undistorted detections, or weak perspective; see :class:`PoseEnergyInputs`),
u the detections, v the visibility, p = ``pixel_scale`` (10 px: residuals in units of a typical
detection error; the difference of normalised coordinates is multiplied by the focal length) and
ρ_δ the pseudo-Huber kernel applied to each joint's 2D residual norm. The prior terms are not
robustified.

Units: μ and t in metres; camera coordinates in millimetres; residuals in pixels / ``pixel_scale``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch
from torch import Tensor, nn

from lightning_energy.energies.base import LeastSquaresEnergy
from lightning_energy.energies.cameras import pixels_to_normalised
from lightning_energy.energies.ppca import PPCAModel, load_ppca, tiny_pose_model
from lightning_energy.energies.robust import PseudoHuber
from lightning_energy.energies.triangulation import triangulate_dlt
from lightning_energy.errors import expect_shape

#: Names of the learnable parameter groups (``learn`` argument).
PARAMETER_GROUPS = ("mean", "bases", "sigma", "weights", "prior", "kernel", "cameras", "scale")
_PROJECTIONS = ("perspective", "weak_perspective")


@dataclass
class PoseEnergyInputs:
    """Per-problem data of :class:`MultiViewPoseEnergy` (one problem = one frame × component).

    The detections are undistorted once, outside the solve
    (:func:`~lightning_energy.energies.cameras.pixels_to_normalised`), so the energy projects
    with a pinhole model and measures residuals in normalised coordinates times the focal length
    (≈ pixels; this drops the distortion's Jacobian, a factor 1 ± 0.05 inside the image).

    Attributes:
        joints2d: (B, C, J, 2) undistorted normalised detections (X/Z, Y/Z) (0 where not
            visible; must be finite).
        visible: (B, C, J) bool visibility.
        R: (B, C, 3, 3) world→camera rotations.
        T: (B, C, 3) camera centres, mm.
        f: (B, C, 2) focal lengths, px.
        component: (B, M) bool one-hot mixture component of each problem.
        confidence: (B, C, J) optional per-detection confidence in (0, 1] (a detector's, e.g.
            :class:`~lightning_energy.networks.KeypointDetector`), multiplying each joint's
            learned weight; differentiable, so the energy's gradient reaches the detector
            through it as well as through ``joints2d``. None weighs every detection 1.
    """

    joints2d: Tensor
    visible: Tensor
    R: Tensor
    T: Tensor
    f: Tensor
    component: Tensor
    confidence: Tensor | None = None

    def detection_weights(self, log_weights: Tensor, dtype: torch.dtype) -> Tensor:
        """(B, C, J) weight of each detection: exp(log w_cj) · visible (· confidence)."""
        weight = log_weights.to(dtype).exp() * self.visible.to(dtype)
        return weight if self.confidence is None else weight * self.confidence.to(dtype)


class PoseDerivatives(NamedTuple):
    """Closed-form derivatives of :meth:`MultiViewPoseEnergy.residuals` (B problems).

    Attributes:
        residuals: (B, m) residuals, m = C·J·2 + L + 1.
        jacobian: (B, m, n) their Jacobian in the solution x.
        reprojection_world: (B, C, J, 2, 3) ∂(joint j's weighted reprojection residual in view c)
            / ∂(world point j, mm): each joint's rows depend on its own point only.
        world: (B, J, 3, n) ∂(world points, mm)/∂x (contiguous).
        body_to_world: (B, 3, 3) ∂(world point, mm)/∂(body offset, m), the same for each joint.
    """

    residuals: Tensor
    jacobian: Tensor
    reprojection_world: Tensor
    world: Tensor
    body_to_world: Tensor


class _PoseChain(NamedTuple):
    """The factors of :meth:`MultiViewPoseEnergy.residuals`' chain rule at one x (B problems).

    Attributes:
        reprojection: (B, C, J, 2) weighted reprojection residuals.
        reprojection_world: (B, C, J, 2, 3) their derivative in joint j's world point (mm).
        world_by_axis: (B, 3, J, n) ∂(world points, mm)/∂x, axis before joint.
        depth: (B, C, J, 2, 3) weak perspective's extra term in the t columns (subtracted), or
            None (perspective).
        prior_scale: (B, L + 1) the prior rows' weights: ∂(prior residual)/∂(z, log s).
        prior: (B, L + 1) the variables the prior rows weigh: z and log s.
        body_to_world: (B, 3, 3) ∂(world point, mm)/∂(body offset, m).
    """

    reprojection: Tensor
    reprojection_world: Tensor
    world_by_axis: Tensor
    depth: Tensor | None
    prior_scale: Tensor
    prior: Tensor
    body_to_world: Tensor

    def residuals(self) -> Tensor:
        """(B, C·J·2 + L + 1): reprojection rows, then the prior rows."""
        return torch.cat((self.reprojection.flatten(1), self.prior_scale * self.prior), 1)


def axis_angle_to_matrix(omega: Tensor) -> Tensor:
    """(…, 3, 3) rotations from axis-angle vectors ``omega`` (…, 3) (Rodrigues, smooth at 0)."""
    theta2 = (omega * omega).sum(-1, keepdim=True).unsqueeze(-1)
    theta = torch.sqrt(theta2 + 1e-24)
    zero = torch.zeros_like(omega[..., 0])
    wx, wy, wz = omega[..., 0], omega[..., 1], omega[..., 2]
    skew = torch.stack((torch.stack((zero, -wz, wy), -1), torch.stack((wz, zero, -wx), -1),
                        torch.stack((-wy, wx, zero), -1)), -2)  # fmt: skip
    a = torch.where(theta2 < 1e-12, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(theta2 < 1e-12, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / (theta2 + 1e-30))
    eye = torch.eye(3, dtype=omega.dtype, device=omega.device)
    return eye + a * skew + b * (skew @ skew)


def _to_camera(points: Tensor, R: Tensor, T: Tensor) -> Tensor:
    """(B, C, J, 3) camera coordinates R_c (P_j − T_c) of points (B, J, 3) shared by the views.

    Written as broadcast products and sums: on CPU this beats C·B tiny 3×3 matrix products.
    """
    diff = points.unsqueeze(1) - T.unsqueeze(2)  # (B, C, J, 3)
    dx, dy, dz = diff[..., 0], diff[..., 1], diff[..., 2]
    rows = [R[..., i, 0:1] * dx + R[..., i, 1:2] * dy + R[..., i, 2:3] * dz for i in range(3)]
    return torch.stack(rows, dim=-1)


def _rotate_yaw(points: Tensor, yaw: Tensor) -> Tensor:
    """Rotate (B, J, 3) points by ``yaw`` (B,) about z: P ↦ R(yaw) P."""
    cos, sin = torch.cos(yaw)[:, None], torch.sin(yaw)[:, None]
    x, y = points[..., 0], points[..., 1]
    return torch.stack((cos * x - sin * y, sin * x + cos * y, points[..., 2]), dim=-1)


class MultiViewPoseEnergy(LeastSquaresEnergy):
    """Robust multi-view reprojection energy of a PPCA mixture pose (see the module docstring).

    The PPCA model comes from ``ppca_root`` (the authors' ``model_parameters.h5``) or, with
    ``ppca_root=None``, from :func:`~lightning_energy.energies.ppca.tiny_pose_model`;
    :meth:`set_model` replaces it (re-fitted or the authors' trained model).

    Args:
        ppca_root: Folder of ``model_parameters.h5``, or None for the tiny synthetic model.
        num_components: Mixture components M (3, 6 or 10 from the file; any for the tiny model).
        num_bases: Bases L to keep (default: all of the model's).
        num_views: Cameras C (per-camera parameters have this size).
        prior_weight: λ of the coefficient prior.
        kernel_scale: δ of the pseudo-Huber kernel, in units of ``pixel_scale``.
        scale_prior_weight: λ_s of the log-scale prior.
        pixel_scale: Reprojection residuals are divided by this many pixels.
        projection: ``"perspective"`` (calibrated pinhole) or ``"weak_perspective"`` (depth of
            each view fixed at the pose centroid's).
        learn: Learnable parameter groups, a subset of :data:`PARAMETER_GROUPS`.

    Example:
        >>> energy = MultiViewPoseEnergy(None, num_components=1)
        >>> energy.solution_shape
        (11,)
    """

    # Registered as parameters or buffers by ``learn``; declared for type checkers.
    mean: Tensor
    bases: Tensor
    log_std: Tensor
    log_weights: Tensor
    log_prior: Tensor
    camera_rotation: Tensor
    log_scale_offset: Tensor
    log_scale_prior: Tensor
    kernel: PseudoHuber

    def __init__(
        self,
        ppca_root: str | None = None,
        num_components: int = 3,
        num_bases: int | None = None,
        num_views: int = 4,
        prior_weight: float = 1.0,
        kernel_scale: float = 2.0,
        scale_prior_weight: float = 10.0,
        pixel_scale: float = 10.0,
        projection: str = "perspective",
        learn: Sequence[str] = PARAMETER_GROUPS,
    ) -> None:
        unknown = set(learn) - set(PARAMETER_GROUPS)
        if unknown:
            raise ValueError(
                f"Expected `learn` ⊆ {PARAMETER_GROUPS}, got unknown {sorted(unknown)}."
            )
        if projection not in _PROJECTIONS:
            raise ValueError(f"Expected `projection` in {_PROJECTIONS}, got {projection!r}.")
        if not (prior_weight >= 0 and scale_prior_weight > 0 and pixel_scale > 0):
            raise ValueError("Expected `prior_weight` >= 0, `scale_prior_weight` > 0 and "
                             f"`pixel_scale` > 0, got {prior_weight}, {scale_prior_weight}, "
                             f"{pixel_scale}.")
        super().__init__(PseudoHuber(kernel_scale, learnable="kernel" in learn))
        model = (tiny_pose_model(num_bases or 6, num_components) if ppca_root is None
                 else load_ppca(ppca_root, num_components))  # fmt: skip
        bases = model.num_bases if num_bases is None else num_bases
        self.learn = tuple(learn)
        self.projection, self.pixel_scale, self.num_views = projection, pixel_scale, num_views
        self.num_components, self.num_bases, self.num_joints = (
            model.num_components, bases, model.num_joints)
        self.solution_shape = (bases + 5,)
        j = model.num_joints
        self._add("mean", torch.zeros(model.num_components, j, 3), "mean")
        self._add("bases", torch.zeros(model.num_components, bases, j, 3), "bases")
        self._add("log_std", torch.zeros(model.num_components, bases), "sigma")
        self._add("log_weights", torch.zeros(num_views, j), "weights")
        self._add("log_prior", torch.tensor(math.log(max(prior_weight, 1e-30))), "prior")
        self._add("camera_rotation", torch.zeros(num_views, 3), "cameras")
        self._add("log_scale_offset", torch.zeros(()), "scale")
        self._add("log_scale_prior", torch.tensor(math.log(scale_prior_weight)), "scale")
        self.use_prior = prior_weight > 0
        self.set_model(model)

    def _add(self, name: str, value: Tensor, group: str) -> None:
        if group in self.learn:
            self.register_parameter(name, nn.Parameter(value))
        else:
            self.register_buffer(name, value)

    @torch.no_grad()
    def set_model(self, model: PPCAModel) -> None:
        """Copy a PPCA model (mm, ``sigma`` in mm⁻¹) into μ, e and the coefficient std."""
        expect_shape("model.mean", model.mean, (self.num_components, self.num_joints, 3))
        model = model.to(dtype=self.mean.dtype)
        self.mean.copy_(model.mean / 1000.0)
        self.bases.copy_(model.bases[:, : self.num_bases])
        self.log_std.copy_(torch.log(1.0 / (1000.0 * model.sigma[:, : self.num_bases])))

    def canonical(self, z: Tensor, component: Tensor) -> Tensor:
        """(B, J, 3) canonical poses, metres, from coefficients z (B, L), component (B, M).

        All components are reconstructed with M (B, L) × (L, J·3) products and the wanted one
        is selected (cheaper on CPU than gathering per-problem bases). The products keep the
        bases' layout, so their gradient has the parameter's strides (what DDP's gradient
        buckets expect, also in a dimension of size 1).
        """
        onehot = component.to(z.dtype)
        m, nb, j = self.num_components, self.num_bases, self.num_joints
        scaled = self.bases.to(z.dtype) * self.log_std.to(z.dtype).exp()[..., None, None]
        every = z @ scaled.reshape(m, nb, j * 3)  # (M, B, J·3)
        every = every + self.mean.to(z.dtype).reshape(m, 1, j * 3)
        return (onehot.t().unsqueeze(-1) * every).sum(0).reshape(-1, j, 3)

    def pose(self, x: Tensor, component: Tensor, offset: Tensor | None = None) -> Tensor:
        """World poses (B, J, 3), metres, of solutions ``x`` (B, L + 5).

        ``offset`` (B, J, 3), metres, is added to the canonical pose before rotation and
        scaling: a body correction (a sequence energy's shared variables).
        """
        nb = self.num_bases
        z, yaw, t, log_s = x[:, :nb], x[:, nb], x[:, nb + 1 : nb + 4], x[:, nb + 4]
        scale = torch.exp(log_s + self.log_scale_offset.to(x.dtype))
        canonical = self.canonical(z, component)
        if offset is not None:
            canonical = canonical + offset
        return scale[:, None, None] * _rotate_yaw(canonical, yaw) + t[:, None]

    def cameras(self, R: Tensor) -> Tensor:
        """(B, C, 3, 3) world→camera rotations with the learned corrections applied."""
        return axis_angle_to_matrix(self.camera_rotation.to(R.dtype)) @ R

    def project(self, points_mm: Tensor, centre_mm: Tensor, inputs: PoseEnergyInputs) -> Tensor:
        """(B, C, J, 2) normalised image coordinates of world points (B, J, 3) mm.

        Perspective divides each joint by its depth; weak perspective by the depth of
        ``centre_mm`` (B, 3), the pose centroid.
        """
        R = self.cameras(inputs.R)
        cam = _to_camera(points_mm, R, inputs.T)
        if self.projection == "perspective":
            return cam[..., :2] / cam[..., 2:]
        depth = _to_camera(centre_mm[:, None], R, inputs.T)[..., 2:]
        return cam[..., :2] / depth

    def residuals(self, x: Tensor, inputs: PoseEnergyInputs,
                  offset: Tensor | None = None) -> Tensor:
        """(B, C·J·2 + L + 1): weighted reprojection, coefficient prior, log-scale prior.

        ``offset``: an optional body correction (B, J, 3), metres (see :meth:`pose`).
        """
        nb = self.num_bases
        world = 1000.0 * self.pose(x, inputs.component, offset)
        uv = self.project(world, 1000.0 * x[:, nb + 1 : nb + 4], inputs)  # (B, C, J, 2)
        weight = inputs.detection_weights(self.log_weights, x.dtype)
        pixels = (uv - inputs.joints2d) * inputs.f.unsqueeze(-2)
        reproj = weight.unsqueeze(-1) * pixels / self.pixel_scale
        prior = (0.5 * self.log_prior.to(x.dtype)).exp() * x[:, :nb] * float(self.use_prior)
        scale = (0.5 * self.log_scale_prior.to(x.dtype)).exp() * x[:, nb + 4 :]
        return torch.cat((reproj.flatten(1), prior, scale), dim=1)

    def residuals_and_jacobian(self, x: Tensor, inputs: PoseEnergyInputs) -> tuple[Tensor, Tensor]:
        """Residuals (B, m) and their Jacobian (B, m, L + 5) in closed form.

        By the chain rule through world point → camera → image. It made the 1,024-frame LM
        solve 1.6× faster on CPU than n autograd products (``pose_cv --bench --bench-ablation``;
        docs/results/pose.md, "Speed").
        """
        derivatives = self.derivatives(x, inputs)
        return derivatives.residuals, derivatives.jacobian

    def gauss_newton_system(self, x: Tensor, inputs: PoseEnergyInputs
                            ) -> tuple[Tensor, Tensor, Tensor]:
        """Energies (B,), gradients (B, n) and JᵀWJ (B, n, n) without forming J (perspective).

        Joint j's rows in every view depend on x only through its world point P_j, so with
        D_j = ∂P_j/∂x (3 × n) and A_cj = ∂r_cj/∂P_j (2 × 3),
        JᵀWJ = Σ_j D_jᵀ (Σ_c A_cjᵀ W_cj A_cj) D_j + the prior rows' diagonal: a 3 × 3 matrix
        per joint instead of C·J·2 dense rows (``bench pose``, docs/benchmarks.md). Weak
        perspective, whose fixed depth adds columns in t, forms the dense Jacobian.
        """
        if self.projection != "perspective":
            return super().gauss_newton_system(x, inputs)
        chain = self._chain(x, inputs)
        b, n = x.shape
        residuals = chain.residuals()
        squared = residuals**2
        value = 0.5 * self.rho(squared).sum(-1)
        w = self.weights(squared)
        reprojection = chain.reprojection.numel() // b
        w_joint = w[:, :reprojection].reshape(chain.reprojection.shape)  # (B, C, J, 2)
        weighted = chain.reprojection_world * w_joint.unsqueeze(-1)  # W_cj A_cj
        # Σ_c A_cjᵀ W_cj r_cj (B, J, 3) and M_j = Σ_c A_cjᵀ W_cj A_cj, laid out (B, 3, 3, J).
        world_grad = torch.einsum("bcjde,bcjd->bje", weighted, chain.reprojection)
        world_hess = torch.einsum("bcjde,bcjdf->befj", weighted,
                                  chain.reprojection_world).contiguous()
        d_world = chain.world_by_axis  # (B, 3, J, n)
        grad = torch.einsum("bdjn,bjd->bn", d_world, world_grad)
        # M_j D_j for every joint as one broadcast product: cheaper than B·J 3 × 3 matmuls.
        product = (world_hess.unsqueeze(-1) * d_world.unsqueeze(1)).sum(2)  # (B, 3, J, n)
        hess = d_world.reshape(b, -1, n).transpose(1, 2) @ product.reshape(b, -1, n)
        # The prior rows are weight·I on the columns of z and log s: diagonal terms only.
        prior_w = chain.prior_scale * w[:, reprojection:]
        prior_grad, prior_hess = prior_w * residuals[:, reprojection:], prior_w * chain.prior_scale
        gap = x.new_zeros(b, 4)  # yaw and t have no prior
        grad = grad + torch.cat((prior_grad[:, :-1], gap, prior_grad[:, -1:]), dim=1)
        hess.diagonal(dim1=-2, dim2=-1).add_(torch.cat((prior_hess[:, :-1], gap,
                                                        prior_hess[:, -1:]), dim=1))
        return value, grad, hess

    def derivatives(self, x: Tensor, inputs: PoseEnergyInputs,
                    offset: Tensor | None = None) -> PoseDerivatives:
        """Residuals, their Jacobian in ``x`` and the chain-rule factors behind it, closed form.

        ``offset`` (B, J, 3), metres, is the body correction of :meth:`pose`; the factors give
        the residuals' derivatives in it (a sequence energy's shared variables).
        """
        chain = self._chain(x, inputs, offset)
        n = x.shape[1]
        nb = self.num_bases
        rows = torch.einsum("bcjde,bejn->bcjdn", chain.reprojection_world, chain.world_by_axis)
        if chain.depth is not None:  # its columns are t's: nb + 1 … nb + 3
            rows = rows - nn.functional.pad(chain.depth, (nb + 1, 1))
        # The prior rows: weight·I on z's columns, then log s's row with its weight in the last
        # column. Out of place (no writes into a buffer), so that vmap over parameters works.
        z_rows = nn.functional.pad(torch.diag_embed(chain.prior_scale[:, :-1]), (0, 5))
        s_row = nn.functional.pad(chain.prior_scale[:, -1:, None], (n - 1, 0))
        jacobian = torch.cat((rows.flatten(1, 3), z_rows, s_row), dim=1)
        return PoseDerivatives(chain.residuals(), jacobian, chain.reprojection_world,
                               chain.world_by_axis.transpose(1, 2).contiguous(),
                               chain.body_to_world)

    def _chain(self, x: Tensor, inputs: PoseEnergyInputs,
               offset: Tensor | None = None) -> _PoseChain:
        """The chain-rule factors of the residuals at ``x`` (see :class:`_PoseChain`)."""
        nb, dtype, joints, b = self.num_bases, x.dtype, self.num_joints, x.shape[0]
        z, yaw, t, log_s = x[:, :nb], x[:, nb], x[:, nb + 1 : nb + 4], x[:, nb + 4]
        scale = torch.exp(log_s + self.log_scale_offset.to(dtype))
        canonical = self.canonical(z, inputs.component)
        if offset is not None:
            canonical = canonical + offset
        rotated = _rotate_yaw(canonical, yaw)  # R(yaw) Q, metres
        world = 1000.0 * (scale[:, None, None] * rotated + t[:, None])
        # ∂world/∂x, mm, laid out (B, 3, J, n) (axis before joint) so that the coefficients'
        # columns, k R(yaw) times the component's bases, are one matrix product for the batch.
        k = 1000.0 * scale
        cos, sin, zero = torch.cos(yaw), torch.sin(yaw), torch.zeros_like(yaw)
        rotation = torch.stack((cos, -sin, zero, sin, cos, zero, zero, zero, zero + 1), -1)
        factors = (inputs.component.to(dtype)[:, None, :, None]
                   * (k[:, None] * rotation).reshape(b, 3, 1, 3))  # (B, 3 axes, M, 3)
        scaled = self.bases.to(dtype) * self.log_std.to(dtype).exp()[..., None, None]
        bases = scaled.permute(0, 3, 2, 1).reshape(-1, joints * nb)  # (M·3, J·L)
        d_z = (factors.reshape(b * 3, 3 * self.num_components) @ bases).reshape(b, 3, joints, nb)
        by_axis = rotated.permute(0, 2, 1)  # (B, 3, J)
        d_yaw = torch.stack((-by_axis[:, 1], by_axis[:, 0], torch.zeros_like(by_axis[:, 0])), 1)
        eye = torch.eye(3, dtype=dtype, device=x.device)
        d_t = (1000.0 * eye)[:, None].expand(b, 3, joints, 3)
        d_world = torch.cat((d_z, k[:, None, None, None] * d_yaw.unsqueeze(-1), d_t,
                             k[:, None, None, None] * by_axis.unsqueeze(-1)), dim=-1)
        R = self.cameras(inputs.R)
        cam = _to_camera(world, R, inputs.T)  # (B, C, J, 3)
        if self.projection == "perspective":
            depth = cam[..., 2:]
        else:
            depth = _to_camera(1000.0 * t[:, None], R, inputs.T)[..., 2:]
        uv = cam[..., :2] / depth
        # ∂uv/∂cam = [I | −uv] / depth (perspective); weak perspective divides by a fixed depth.
        d_cam = R.unsqueeze(2) / depth.unsqueeze(-1)  # (B, C, J or 1, 3, 3) rows over depth
        if self.projection == "perspective":
            d_uv_cam = d_cam[..., :2, :] - uv.unsqueeze(-1) * d_cam[..., 2:, :]
        else:
            d_uv_cam = d_cam[..., :2, :].expand(-1, -1, joints, -1, -1)
        weight = inputs.detection_weights(self.log_weights, dtype)
        factor = weight.unsqueeze(-1) * inputs.f.unsqueeze(-2) / self.pixel_scale  # (B, C, J, 2)
        depth_columns = None
        if self.projection != "perspective":
            # The fixed depth is the centroid's: 1000 t in camera coordinates, a function of t.
            d_depth = 1000.0 * R[..., 2, :] / depth[..., 0, :]  # (B, C, 3), over the depth
            depth_columns = (factor * uv).unsqueeze(-1) * d_depth[:, :, None, None, :]
        prior_weight = (0.5 * self.log_prior.to(dtype)).exp() * float(self.use_prior)
        scale_weight = (0.5 * self.log_scale_prior.to(dtype)).exp()
        prior_scale = torch.cat((prior_weight.expand(b, nb), scale_weight.expand(b, 1)), dim=1)
        eye3 = torch.eye(3, dtype=dtype, device=x.device).expand(b, 3, 3)
        body = 1000.0 * scale[:, None, None] * _rotate_yaw(eye3, yaw).transpose(1, 2)
        return _PoseChain(factor * (uv - inputs.joints2d), factor.unsqueeze(-1) * d_uv_cam,
                          d_world, depth_columns, prior_scale,
                          torch.cat((z, x[:, nb + 4 :]), dim=1), body)

    def _split(self, squared: Tensor) -> tuple[Tensor, Tensor]:
        m = self.num_views * self.num_joints * 2
        joint = squared[:, :m].reshape(squared.shape[0], -1, 2).sum(-1, keepdim=True)
        return joint.expand(-1, -1, 2).reshape(squared.shape[0], m), squared[:, m:]

    def rho(self, squared: Tensor) -> Tensor:
        """Pseudo-Huber of each joint's squared 2D residual norm (halved over its two entries)."""
        joint, rest = self._split(squared)
        return torch.cat((0.5 * self.kernel(joint), rest), dim=1)

    def weights(self, squared: Tensor) -> Tensor:
        """IRLS weights ρ'(‖r_cj‖²) on both entries of a joint, 1 on the prior rows."""
        joint, rest = self._split(squared)
        return torch.cat((self.kernel.weight(joint), torch.ones_like(rest)), dim=1)

    @torch.no_grad()
    def initial_solution(self, inputs: PoseEnergyInputs) -> Tensor:
        """(B, L + 5): z = 0, yaw and centroid from DLT triangulation, log s = 0."""
        dtype = torch.float64
        ones = torch.ones_like(inputs.f, dtype=dtype)
        points = triangulate_dlt(inputs.joints2d.to(dtype), inputs.visible, inputs.R.to(dtype),
                                 inputs.T.to(dtype), ones, torch.zeros_like(ones)) / 1000.0
        return initial_from_points(points, self.num_bases).to(inputs.joints2d.dtype)


def initial_from_points(points: Tensor, num_bases: int) -> Tensor:
    """(B, L + 5) start from triangulated points (B, J, 3) m (NaN allowed): yaw, centroid.

    Frames with no usable points start at yaw 0 and the origin.
    """
    finite = torch.isfinite(points).all(-1, keepdim=True)
    filled = torch.where(finite, points, torch.zeros_like(points))
    centre = filled.sum(1) / finite.sum(1).clamp_min(1)
    hips = filled[:, 1] - filled[:, 4]
    yaw = torch.atan2(hips[:, 1], hips[:, 0])
    yaw = torch.where(torch.isfinite(yaw), yaw, torch.zeros_like(yaw))
    x = torch.zeros(points.shape[0], num_bases + 5, dtype=points.dtype, device=points.device)
    x[:, num_bases] = yaw
    x[:, num_bases + 1 : num_bases + 4] = centre
    return x


def yaw_offsets(num_bases: int, yaws: Sequence[float]) -> Tensor:
    """(S, L + 5) MultiStart offsets that change only the yaw (radians)."""
    offsets = torch.zeros(len(yaws), num_bases + 5, dtype=torch.float64)
    offsets[:, num_bases] = torch.tensor(list(yaws), dtype=torch.float64)
    return offsets


class CalibratedDetections(Protocol):
    """What :func:`pose_energy_inputs` reads (:class:`~lightning_energy.datasets.PoseBatch` has it).

    Attributes:
        joints2d: (B, C, J, 2) pixel detections (any value where not visible).
        visible: (B, C, J) bool visibility.
        R: (B, C, 3, 3) world→camera rotations.
        T: (B, C, 3) camera centres, mm.
        f: (B, C, 2) focal lengths, px.
        c: (B, C, 2) principal points, px.
        k: (B, C, 3) radial distortion.
        p: (B, C, 2) tangential distortion.
    """

    joints2d: Tensor
    visible: Tensor
    R: Tensor
    T: Tensor
    f: Tensor
    c: Tensor
    k: Tensor
    p: Tensor


def pose_energy_inputs(batch: CalibratedDetections, num_components: int,
                       confidence: Tensor | None = None) -> PoseEnergyInputs:
    """Energy inputs for every frame × component: B·M problems, frame-major.

    Problem ``b·M + m`` is frame b with component m. Detections are undistorted here, once.

    Args:
        batch: Frames with pixel detections (B, C, J, 2) and calibrated cameras.
        num_components: Mixture components M.
        confidence: Optional (B, C, J) confidence of each detection (see
            :class:`PoseEnergyInputs`).
    """
    xy = pixels_to_normalised(batch.joints2d, batch.f, batch.c, batch.k, batch.p)
    xy = torch.where(batch.visible.unsqueeze(-1), xy, torch.zeros_like(xy))
    b, m = batch.joints2d.shape[0], num_components
    component = torch.eye(m, dtype=torch.bool, device=xy.device).repeat(b, 1)
    def rep(t: Tensor) -> Tensor:
        return t.repeat_interleave(m, dim=0)

    if confidence is not None:
        expect_shape("confidence", confidence, tuple(batch.visible.shape))
    return PoseEnergyInputs(joints2d=rep(xy), visible=rep(batch.visible), R=rep(batch.R),
                            T=rep(batch.T), f=rep(batch.f), component=component,
                            confidence=None if confidence is None else rep(confidence))
