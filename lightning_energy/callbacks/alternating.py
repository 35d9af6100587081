"""Alternating updates: only one group of parameters moves at a time."""

from __future__ import annotations

from fnmatch import fnmatchcase

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback


def in_group(name: str, patterns: list[str]) -> bool:
    """Whether parameter ``name`` matches a pattern: equal, a submodule of it, or fnmatch."""
    return any(name == p or name.startswith(p + ".") or fnmatchcase(name, p) for p in patterns)


class AlternatingUpdates(Callback):
    """Cycle through parameter groups: for ``every`` optimizer steps only one group is updated.

    Groups are lists of parameter-name patterns of the LightningModule (``named_parameters``):
    a pattern matches a parameter with that name, every parameter of a submodule of that name,
    or by shell wildcards. Steps ``[k·every, (k+1)·every)`` update only group ``k mod len(groups)``;
    the others get no gradient that step (``grad = None``, so Adam leaves them and their moments
    alone). Parameters in no group are updated every step.

    Examples (recipe ``trainer.callbacks``): the energy and the network in turn, 10 steps each,
    ``groups: [[layer], [backbone]], every: 10``; the pose energy's shape model and its other
    parameters on alternate steps, ``groups: [[layer.energy.mean, layer.energy.bases,
    layer.energy.log_std], ["layer.energy.log_*", layer.energy.camera_rotation]]``.

    Args:
        groups: Two or more lists of parameter-name patterns.
        every: Optimizer steps per phase.

    Example:
        >>> from lightning_energy.callbacks import AlternatingUpdates
        >>> alternate = AlternatingUpdates(groups=[["layer"], ["backbone"]], every=10)
        >>> [alternate.active_group(step) for step in (0, 9, 10, 19, 20)]
        [0, 0, 1, 1, 0]
    """

    def __init__(self, groups: list[list[str]], every: int = 1) -> None:
        if len(groups) < 2 or any(not group for group in groups):
            raise ValueError(f"Expected `groups`: two or more non-empty lists of parameter-name "
                             f"patterns, got {groups!r}.")
        if every < 1:
            raise ValueError(f"Expected `every` >= 1, got {every}.")
        self.groups, self.every = [list(g) for g in groups], every

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Check that every pattern matches a trainable parameter."""
        names = [n for n, p in pl_module.named_parameters() if p.requires_grad]
        for group in self.groups:
            for pattern in group:
                if not any(in_group(name, [pattern]) for name in names):
                    raise ValueError(
                        f"AlternatingUpdates: pattern {pattern!r} of `groups` matches no "
                        f"trainable parameter; parameters: {names}.")

    def active_group(self, step: int) -> int:
        """Index of the group updated at optimizer step ``step``."""
        return (step // self.every) % len(self.groups)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule,  # noqa: D102
                                 optimizer: torch.optim.Optimizer) -> None:
        active = self.active_group(trainer.global_step)
        for name, param in pl_module.named_parameters():
            grouped = [i for i, group in enumerate(self.groups) if in_group(name, group)]
            if grouped and active not in grouped:
                param.grad = None
