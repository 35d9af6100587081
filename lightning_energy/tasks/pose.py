"""Multi-view 3D pose: learn the PPCA pose energy end to end from MPJPE to the ground truth."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor
from torchmetrics import MetricCollection

from lightning_energy.adjoints.base import Adjoint
from lightning_energy.adjoints.implicit import ImplicitAdjoint
from lightning_energy.datasets.pose_batch import UNDETECTED_JOINT, PoseBatch
from lightning_energy.energies.pose import MultiViewPoseEnergy, pose_energy_inputs, yaw_offsets
from lightning_energy.energies.triangulation import triangulate_dlt
from lightning_energy.layer import EnergyLayer
from lightning_energy.metrics.functional import mpjpe, similarity_align
from lightning_energy.metrics.pose import MPJPE, PAMPJPE, SystematicOffset
from lightning_energy.solvers.base import Solver
from lightning_energy.solvers.gauss_newton import LevenbergMarquardt
from lightning_energy.solvers.multistart import MultiStart
from lightning_energy.solvers.solution import Solution
from lightning_energy.tasks.base import EnergyTask, check_learning_rates

#: Problems (frames × components) per solve chunk on a CPU: the 1,024-frame, 3-component solve
#: took 6.4 s in chunks of 384 against 11.2 s at once (docs/benchmarks.md); a GPU solves at once.
CPU_CHUNK_SIZE = 384

#: Parameters of the PPCA shape model (mean, bases, log std) within the pose energy.
SHAPE_PARAMETERS = ("mean", "bases", "log_std")


def build_pose_layer(
    energy: MultiViewPoseEnergy,
    solver: Solver | None = None,
    adjoint: Adjoint | None = None,
    yaw_starts: Sequence[float] = (0.0,),
    nonconverged: str = "mask",
    chunk_size: int | None = None,
) -> EnergyLayer:
    """An :class:`EnergyLayer` for the pose energy, with one start per yaw offset (radians).

    Defaults: Levenberg–Marquardt in float64 (30 steps, ‖∇E‖ ≤ 1e-4) and the trust-region
    implicit adjoint with the exact Hessian and damping 1e-2. Thirty, not fifteen: the
    robust kernel makes LM converge linearly near the end, and at 15 steps only ~31% of solves of
    a trained energy met the tolerance (98% at 30), so most samples were masked out of the
    implicit gradient; a solve stops as soon as every sample has converged (~17 steps on average).
    The exact Hessian, not Gauss–Newton: at a robust, non-zero-residual optimum Gauss–Newton drops
    the kernel's ρ'' and the residuals' curvature, and on Human3.6M its gradient was 25% off
    (cosine 0.97, one scale derivative of the wrong sign); the exact one matched finite
    differences, at about the same cost for n = 30. ``chunk_size`` (problems = frames × components
    per chunk) is the layer's: on CPU 384 keeps a chunk's Jacobians in cache (the 1,024-frame
    solve took 6.4 s instead of 11.2 s); on a GPU leave it None.
    """
    solver = solver or LevenbergMarquardt(max_steps=30, tol=1e-4, dtype="float64")
    if len(yaw_starts) > 1:
        solver = MultiStart(solver, yaw_offsets(energy.num_bases, yaw_starts))
    adjoint = adjoint or ImplicitAdjoint(damping=1e-2, hessian="exact")
    return EnergyLayer(energy, solver, adjoint, nonconverged, chunk_size=chunk_size)


def lowest_energy(values: Tensor) -> Tensor:
    """(B,) index of each row's lowest finite energy among (B, M) (non-finite ones lose)."""
    return torch.where(torch.isfinite(values), values, torch.inf).argmin(dim=1)


def select_components(solution: Solution, num_components: int) -> tuple[Tensor, Solution]:
    """Keep, per frame, the component with the lowest final energy.

    Args:
        solution: Solution of B·M frame-major problems (x of shape (B·M, n)).
        num_components: M.

    Returns:
        ``(best (B,) long component, per-frame Solution with x (B, n))``.
    """
    m = num_components
    best = lowest_energy(solution.value.reshape(-1, m))
    index = torch.arange(best.shape[0], device=best.device) * m + best
    picked = Solution(
        x=solution.x[index], value=solution.value[index], status=solution.status[index],
        converged=solution.converged[index], num_steps=solution.num_steps[index],
        grad_norm=solution.grad_norm[index], damping=solution.damping[index],
        diagnostics=dict(solution.diagnostics),
    )  # fmt: skip
    return best, picked


def component_weights(values: Tensor, temperature: float) -> Tensor:
    """(B, M) weights softmax(−E_m / τ) of each frame's M component solutions, energies (B, M).

    A component whose energy is not finite gets weight 0; a frame with none finite weighs its
    components equally (its prediction is then as unusable as each of them).
    """
    finite = torch.isfinite(values)
    shifted = torch.where(finite, values, torch.inf)
    shifted = shifted - shifted.min(dim=1, keepdim=True).values.nan_to_num(0.0, 0.0, 0.0)
    logits = torch.where(finite, -shifted / temperature, -torch.inf)
    logits = torch.where(finite.any(dim=1, keepdim=True), logits, torch.zeros_like(logits))
    return torch.softmax(logits, dim=1)


class MultiViewPoseTask(EnergyTask):
    """Per frame x* = argmin E(x; θ, detections) of :class:`MultiViewPoseEnergy`; loss MPJPE.

    Every frame is solved for each mixture component (and each yaw start); the lowest energy
    wins. ``forward`` returns a :class:`Solution` whose ``x`` is the predicted pose (B, 17, 3) in
    mm, world frame. The loss is the root-aligned MPJPE (mm, 17 joints) to the ground truth;
    metrics ``{stage}/mpjpe``, ``{stage}/pa_mpjpe``, ``{stage}/offset`` and
    ``{stage}/mpjpe_without_offset`` (:meth:`build_metrics`). No ground-truth scale is used.

    Args:
        energy: The pose energy (its learnable groups are chosen by its ``learn``).
        solver: Inner solver (default Levenberg–Marquardt, float64, 30 steps).
        adjoint: Backward rule (default trust-region implicit, exact Hessian, λ = 1e-2).
        yaw_starts: Yaw offsets (radians) added to the triangulated yaw, one start each.
        optimizer: Optimizer factory.
        scheduler: Optional scheduler factory.
        energy_lr: Learning rate of the energy parameters.
        shape_lr: Learning rate of the shape model (μ, e, σ: :data:`SHAPE_PARAMETERS`); default
            ``energy_lr``. The shape model has thousands of coordinates in metres, the other
            groups ~80 log weights, log scales and rotation corrections, and one rate does not
            suit both (docs/results/pose.md, "Second tuning round").
        chunk_size: Solve at most this many problems (frames × components) at once; None
            solves the batch at once. ``"auto"`` (the default) picks by the device of the batch:
            :data:`CPU_CHUNK_SIZE` on a CPU (cache-sized, see :func:`build_pose_layer`), the
            whole batch on a GPU.
        component_temperature: None predicts the pose of the lowest-energy component. A
            temperature τ > 0 predicts the average of the components' poses weighted by
            softmax(−E_m / τ) (:func:`component_weights`), differentiable in θ through the
            poses and the energies; a frame then counts as converged when every component with
            at least 1% of the weight converged.
        scheduler_interval: Step the scheduler every ``"epoch"`` or optimizer ``"step"``.

    Example:
        On synthetic frames (4 views, 17 joints) and the tiny default pose model:

        >>> from lightning_energy.datamodules import PoseDataModule
        >>> from lightning_energy.tasks import MultiViewPoseTask
        >>> data = PoseDataModule(batch_size=4, synthetic_frames=8)
        >>> data.setup("fit")
        >>> batch = next(iter(data.train_dataloader()))
        >>> task = MultiViewPoseTask()
        >>> solution = task(batch)
        >>> task.loss(solution, batch).backward()  # MPJPE in mm, through the implicit gradient
        >>> solution.x.shape  # poses (B, 17, 3), mm
        torch.Size([4, 17, 3])
    """

    def __init__(
        self,
        energy: MultiViewPoseEnergy | None = None,
        solver: Solver | None = None,
        adjoint: Adjoint | None = None,
        yaw_starts: Sequence[float] = (0.0,),
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        energy_lr: float = 1e-3,
        shape_lr: float | None = None,
        chunk_size: int | Literal["auto"] | None = "auto",
        component_temperature: float | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
    ) -> None:
        check_learning_rates(shape_lr=shape_lr)
        if component_temperature is not None and not component_temperature > 0:
            raise ValueError(f"Expected `component_temperature` to be None or a float > 0, got "
                             f"{component_temperature!r}.")
        energy = energy or MultiViewPoseEnergy(None, num_components=1)
        if chunk_size != "auto" and chunk_size is not None and chunk_size < 1:
            raise ValueError(f"Expected `chunk_size` >= 1, None or 'auto', got {chunk_size!r}.")
        fixed = None if chunk_size == "auto" else chunk_size
        layer = build_pose_layer(energy, solver, adjoint, yaw_starts, chunk_size=fixed)
        super().__init__(layer, None, optimizer, scheduler, energy_lr,
                         scheduler_interval=scheduler_interval)
        self.chunk_size = chunk_size
        self.shape_lr = energy_lr if shape_lr is None else shape_lr
        self.component_temperature = component_temperature

    @property
    def pose_energy(self) -> MultiViewPoseEnergy:
        """The pose energy."""
        energy = self.layer.energy
        assert isinstance(energy, MultiViewPoseEnergy)
        return energy

    def energy_groups(self) -> list[dict[str, Any]]:
        """The energy's shape model at ``shape_lr``, its other parameters at ``energy_lr``.

        With equal rates this is the base class's single ``"energy"`` group, so optimizer states
        saved before ``shape_lr`` existed still resume. A backbone (``ImagePoseTask``'s
        detector) gets its own group beside these (:meth:`EnergyTask.parameter_groups`).
        """
        if self.shape_lr == self.energy_lr:
            return super().energy_groups()
        named = [(n, p) for n, p in self.pose_energy.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in named if n in SHAPE_PARAMETERS], "lr": self.shape_lr,
             "name": "shape"},
            {"params": [p for n, p in named if n not in SHAPE_PARAMETERS], "lr": self.energy_lr,
             "name": "energy"},
        ]  # fmt: skip
        return [g for g in groups if g["params"]]

    def energy_inputs(self, batch: PoseBatch) -> Any:  # noqa: D102
        return pose_energy_inputs(batch.to(dtype=torch.float64),
                                  self.pose_energy.num_components)

    def forward(self, batch: PoseBatch) -> Solution:
        """Solve every frame; ``x`` of the result is the pose (B, J, 3), mm, world frame.

        The other fields describe each frame's lowest-energy component (with
        ``component_temperature``, ``converged`` as documented there).
        """
        energy = self.pose_energy
        inputs = self.energy_inputs(batch)
        if self.chunk_size == "auto":
            self.layer.chunk_size = CPU_CHUNK_SIZE if batch.joints2d.device.type == "cpu" else None
        solution = self.layer(inputs)
        best, picked = select_components(solution, energy.num_components)
        if self.component_temperature is None:
            onehot = torch.nn.functional.one_hot(best, energy.num_components).bool()
            picked.x = (1000.0 * energy.pose(picked.x, onehot)).to(batch.joints3d.dtype)
            return picked
        poses, values = self.component_poses(solution, inputs)
        weights = component_weights(values, self.component_temperature)
        picked.x = (weights[..., None, None] * poses).sum(1).to(batch.joints3d.dtype)
        converged = solution.converged.reshape(values.shape)
        picked.converged = (converged | (weights.detach() < 0.01)).all(dim=1)
        return picked

    def component_poses(self, solution: Solution, inputs: Any) -> tuple[Tensor, Tensor]:
        """Poses (B, M, J, 3), mm, and energies (B, M) of every frame's component solutions.

        The energies are re-evaluated at x* so that they are differentiable in θ (at a
        minimum ∂E/∂x = 0, so their total derivative is the partial one).
        """
        energy, m = self.pose_energy, self.pose_energy.num_components
        poses = 1000.0 * energy.pose(solution.x, inputs.component)
        values = energy(solution.x, inputs)
        return poses.reshape(-1, m, *poses.shape[1:]), values.reshape(-1, m)

    def loss(self, solution: Solution, batch: PoseBatch) -> Tensor:
        """Root-aligned MPJPE (mm, 17 joints) over :meth:`trainable` frames.

        The pose P(x*; θ) depends on θ directly (μ, e, σ, s₀) as well as through x*, so frames
        whose solve was masked are left out entirely rather than sending half a gradient. A batch
        with none left gives a zero loss.
        """
        keep = self.trainable(solution)
        if not bool(keep.any()):
            return solution.x.sum() * 0.0
        return mpjpe(solution.x[keep], batch.joints3d[keep])

    def build_metrics(self) -> MetricCollection:
        """MPJPE, PA-MPJPE, the systematic offset and the MPJPE left without it.

        The offset (:class:`~lightning_energy.metrics.SystematicOffset`) says how much of the
        error is one per-joint bias shared by the frames.
        """
        return MetricCollection({"mpjpe": MPJPE(), "pa_mpjpe": PAMPJPE(),
                                 "offset": SystematicOffset(),
                                 "mpjpe_without_offset": SystematicOffset(remainder=True)})

    def metric_inputs(self, solution: Solution, batch: PoseBatch) -> tuple[Tensor, ...]:  # noqa: D102
        return solution.x.detach(), batch.joints3d

    def baseline_errors(self, solution: Solution, batch: PoseBatch) -> dict[str, Tensor]:
        """Per-frame MPJPE (mm) of the energy and of DLT triangulation (16 detected joints)."""
        dlt, mask = dlt_triangulation(batch)
        return {"energy": per_frame_mpjpe(solution.x.detach(), batch.joints3d),
                "dlt": per_frame_mpjpe(dlt, batch.joints3d, mask)}

    def baseline_metrics(self, solution: Solution, batch: PoseBatch) -> dict[str, Tensor]:
        """Per-frame MPJPE and PA-MPJPE (mm) of DLT triangulation over the 16 detected joints."""
        dlt, mask = dlt_triangulation(batch)
        name = "DLT triangulation (16 joints)"
        return {f"{name}/mpjpe": per_frame_mpjpe(dlt, batch.joints3d, mask),
                f"{name}/pa_mpjpe": per_frame_pa_mpjpe(dlt, batch.joints3d, mask)}

    def batch_size(self, batch: PoseBatch) -> int:  # noqa: D102
        return len(batch)


def dlt_triangulation(batch: PoseBatch) -> tuple[Tensor, Tensor]:
    """DLT poses (B, J, 3), mm (undetected joints zero), and the (J,) mask of detected joints."""
    dlt = triangulate_dlt(batch.joints2d, batch.visible, batch.R, batch.T, batch.f, batch.c,
                          batch.k, batch.p)
    mask = torch.ones(dlt.shape[1], dtype=torch.bool, device=dlt.device)
    mask[UNDETECTED_JOINT] = False
    return torch.nan_to_num(dlt), mask


def per_frame_pa_mpjpe(pred: Tensor, target: Tensor, joint_mask: Tensor) -> Tensor:
    """(B,) Procrustes-aligned MPJPE per frame, mm, over (and aligned on) ``joint_mask`` (J,)."""
    mask = joint_mask.expand(pred.shape[0], -1)
    aligned = similarity_align(pred.double(), target.double(), mask)
    error = (aligned - target.double()).norm(dim=-1)
    return (error * joint_mask).sum(-1) / joint_mask.sum()


def per_frame_mpjpe(pred: Tensor, target: Tensor, joint_mask: Tensor | None = None) -> Tensor:
    """(B,) root-aligned MPJPE per frame, mm, over the joints in ``joint_mask`` (J,) bool."""
    error = ((pred - pred[:, :1]) - (target - target[:, :1])).norm(dim=-1)
    if joint_mask is None:
        return error.mean(-1)
    return (error * joint_mask).sum(-1) / joint_mask.sum()


#: Four yaw starts a quarter turn apart (radians), for recipes that want more than one.
QUARTER_TURNS = (0.0, 0.5 * math.pi, math.pi, -0.5 * math.pi)
