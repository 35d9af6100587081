"""Multi-view 3D pose over windows of frames: one body per sequence, smooth motion."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from lightning_energy._tree import tree_map
from lightning_energy.adjoints.base import Adjoint
from lightning_energy.adjoints.implicit import ImplicitAdjoint
from lightning_energy.datasets.pose_batch import PoseBatch
from lightning_energy.datasets.pose_windows import PoseWindowBatch
from lightning_energy.energies.pose import MultiViewPoseEnergy, pose_energy_inputs
from lightning_energy.energies.pose_sequence import SequencePoseEnergy, SequencePoseInputs
from lightning_energy.layer import EnergyLayer
from lightning_energy.linalg.solvers import BlockArrow
from lightning_energy.metrics.functional import mpjpe
from lightning_energy.solvers.base import Solver
from lightning_energy.solvers.block_arrow_lm import BlockArrowLevenbergMarquardt
from lightning_energy.solvers.solution import Solution
from lightning_energy.tasks.pose import (
    CPU_CHUNK_SIZE,
    SHAPE_PARAMETERS,
    MultiViewPoseTask,
    select_components,
)


class SequencePoseTask(MultiViewPoseTask):
    """Per window x* = argmin of :class:`SequencePoseEnergy`; loss MPJPE on the scored frames.

    Each frame is first solved alone by the per-frame energy (no gradient): that picks its
    mixture component (the lowest energy) and the window's starting point. The window is then
    solved jointly — per-frame poses, the shared body offsets, smoothness between neighbours —
    by block-arrow Levenberg–Marquardt and differentiated by the implicit adjoint with the
    block-arrow linear solver, so the gradient reaches every parameter of the per-frame energy
    as well as the sequence terms'. ``forward`` returns a :class:`Solution` per frame (B·T
    frames, window-major; ``x`` the pose (B·T, 17, 3), mm); losses and metrics count the
    batch's ``scored`` frames (:class:`~lightning_energy.datasets.PoseWindowBatch`).

    The other arguments are :class:`MultiViewPoseTask`'s.

    Args:
        energy: The per-frame energy (its ``learn`` chooses its learnable groups).
        body: Shared body variables, ``"offset"`` or ``"none"`` (:class:`SequencePoseEnergy`).
        smoothness_weight: Initial smoothness weight; 0 drops the term.
        smoothness_scale: Initial smoothness kernel scale (units of 10 mm).
        body_prior_weight: Initial weight of the body offsets' prior.
        frame_solver: Solver of the per-frame solves (default as :class:`MultiViewPoseTask`).
        solver: Solver of the window (default
            :class:`~lightning_energy.BlockArrowLevenbergMarquardt` with the kernels' curvature,
            float64, 50 steps, ‖∇E‖ ≤ 1e-4; see there for the measured alternatives).
        adjoint: Backward rule of the window (default implicit, λ = 1e-2, block-arrow solves).

    Example:
        >>> from lightning_energy.datamodules import PoseSequenceDataModule
        >>> data = PoseSequenceDataModule(window=4, batch_size=2, synthetic_frames=32)
        >>> data.setup("fit")
        >>> batch = next(iter(data.train_dataloader()))
        >>> task = SequencePoseTask()
        >>> solution = task(batch)
        >>> task.loss(solution, batch).backward()
        >>> solution.x.shape  # (B·T, 17, 3) poses, mm
        torch.Size([8, 17, 3])
    """

    def __init__(
        self,
        energy: MultiViewPoseEnergy | None = None,
        body: str = "offset",
        smoothness_weight: float = 1.0,
        smoothness_scale: float = 3.0,
        body_prior_weight: float = 100.0,
        frame_solver: Solver | None = None,
        solver: Solver | None = None,
        adjoint: Adjoint | None = None,
        yaw_starts: Sequence[float] = (0.0,),
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        energy_lr: float = 1e-3,
        shape_lr: float | None = None,
        chunk_size: int | Literal["auto"] | None = "auto",
        scheduler_interval: Literal["epoch", "step"] = "epoch",
    ) -> None:
        super().__init__(energy, frame_solver, None, yaw_starts, optimizer, scheduler, energy_lr,
                         shape_lr, chunk_size, None, scheduler_interval)
        frame_energy = super().pose_energy
        self.frame_layer = self.layer
        # The per-frame solves only pick components and start the window's solve; what is masked
        # (and warned about) is the window's.
        self.frame_layer.warn_masked_share = 1.0
        sequence = SequencePoseEnergy(frame_energy, body, smoothness_weight, smoothness_scale,
                                      body_prior_weight)
        solver = solver or BlockArrowLevenbergMarquardt(max_steps=50, tol=1e-4, dtype="float64",
                                                        kernel_curvature=True)
        adjoint = adjoint or ImplicitAdjoint(1e-2, linear_solver=BlockArrow())
        self.layer = EnergyLayer(sequence, solver, adjoint, self.frame_layer.nonconverged)

    @property
    def sequence_energy(self) -> SequencePoseEnergy:
        """The window's energy."""
        energy = self.layer.energy
        assert isinstance(energy, SequencePoseEnergy)
        return energy

    @property
    def pose_energy(self) -> MultiViewPoseEnergy:
        """The per-frame energy (inside :attr:`sequence_energy`)."""
        return self.sequence_energy.frame

    def energy_groups(self) -> list[dict[str, Any]]:
        """The shape model (μ, e, σ) at ``shape_lr``, other energy parameters at ``energy_lr``."""
        if self.shape_lr == self.energy_lr:
            return super(MultiViewPoseTask, self).energy_groups()
        frame = dict(self.pose_energy.named_parameters())
        shape = {id(frame[n]) for n in SHAPE_PARAMETERS if n in frame}
        params = [p for p in self.layer.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if id(p) in shape], "lr": self.shape_lr,
             "name": "shape"},
            {"params": [p for p in params if id(p) not in shape], "lr": self.energy_lr,
             "name": "energy"},
        ]  # fmt: skip
        return [g for g in groups if g["params"]]

    def forward(self, batch: PoseWindowBatch) -> Solution:  # type: ignore[override]
        """Solve every window; ``x`` of the result is each frame's pose (B·T, J, 3), mm.

        The other fields are the window's, repeated for each of its frames.
        """
        frames = batch.frames
        b, t = batch.real.shape
        m = self.pose_energy.num_components
        problems = pose_energy_inputs(frames.to(dtype=torch.float64), m)
        if self.chunk_size == "auto":
            cpu = frames.joints2d.device.type == "cpu"
            self.frame_layer.chunk_size = CPU_CHUNK_SIZE if cpu else None
        with torch.no_grad():
            best, picked = select_components(self.frame_layer(problems), m)
        rows = torch.arange(b * t, device=best.device) * m + best
        chosen = tree_map(lambda x: x[rows].reshape(b, t, *x.shape[1:]), problems)
        inputs = SequencePoseInputs(chosen, batch.real.to(torch.float64))
        energy = self.sequence_energy
        x0 = torch.cat([picked.x.reshape(b, -1), picked.x.new_zeros(b, energy.shared_size)], 1)
        solution = self.layer(inputs, x0)
        poses = 1000.0 * energy.poses(*energy.split(solution.x), inputs)
        return Solution(
            x=poses.flatten(0, 1).to(frames.joints3d.dtype),
            value=solution.value.repeat_interleave(t), status=solution.status.repeat_interleave(t),
            converged=solution.converged.repeat_interleave(t),
            num_steps=solution.num_steps.repeat_interleave(t),
            grad_norm=solution.grad_norm.repeat_interleave(t),
            damping=solution.damping.repeat_interleave(t), diagnostics=solution.diagnostics,
        )  # fmt: skip

    def loss(self, solution: Solution, batch: PoseWindowBatch) -> Tensor:  # type: ignore[override]
        """Root-aligned MPJPE (mm) over the scored frames of trainable windows."""
        keep = self.trainable(solution) & batch.scored.flatten()
        if not bool(keep.any()):
            return solution.x.sum() * 0.0
        return mpjpe(solution.x[keep], batch.frames.joints3d[keep])

    def metric_inputs(self, solution: Solution,  # type: ignore[override]
                      batch: PoseWindowBatch) -> tuple[Tensor, ...]:
        """Poses and ground truth of the scored frames."""
        scored = batch.scored.flatten()
        return solution.x.detach()[scored], batch.frames.joints3d[scored]

    def _scored(self, solution: Solution, batch: PoseWindowBatch) -> tuple[Solution, PoseBatch]:
        scored = batch.scored.flatten()
        per_frame = {f.name: getattr(solution, f.name)[scored] for f in dataclasses.fields(solution)
                     if isinstance(getattr(solution, f.name), Tensor)
                     and getattr(solution, f.name).shape[:1] == scored.shape}
        return dataclasses.replace(solution, **per_frame), batch.frames.select(scored)

    def baseline_errors(self, solution: Solution,  # type: ignore[override]
                        batch: PoseWindowBatch) -> dict[str, Tensor]:
        """Per scored frame: MPJPE (mm) of the window solve and of DLT triangulation."""
        return super().baseline_errors(*self._scored(solution, batch))

    def baseline_metrics(self, solution: Solution,  # type: ignore[override]
                         batch: PoseWindowBatch) -> dict[str, Tensor]:
        """DLT triangulation on the scored frames (as :class:`MultiViewPoseTask`)."""
        return super().baseline_metrics(*self._scored(solution, batch))

    def batch_size(self, batch: PoseWindowBatch) -> int:  # type: ignore[override]
        """Scored frames (at least 1, so a batch without any logs with a positive weight)."""
        return max(batch.batch_size, 1)
