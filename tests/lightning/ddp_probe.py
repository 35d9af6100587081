"""A callback the DDP test injects through the CLI: each rank dumps what it ended with."""

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback


class RankProbe(Callback):
    """Save parameters and the logged validation metric per rank; rank 0 adds a local reference."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        dump = {"params": {k: v.detach().cpu() for k, v in pl_module.state_dict().items()},
                "val_abs_error": metrics["val/abs_error"].cpu(),
                "val_masked_share": metrics["val/solver/masked_share"].cpu(),
                "world_size": trainer.world_size}
        if trainer.global_rank == 0:
            dump["reference"], dump["reference_masked"] = self._full_validation(trainer, pl_module)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.save(dump, self.out / f"rank{trainer.global_rank}.pt")

    @torch.no_grad()
    def _full_validation(self, trainer: pl.Trainer,
                         pl_module: pl.LightningModule) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean absolute error and share of masked (non-converged) samples on the whole set."""
        errors, masked = [], []
        for batch in torch.utils.data.DataLoader(trainer.datamodule.val_set, batch_size=64):
            solution = pl_module(batch)
            errors.append((solution.x[:, 0] - batch["location"]).abs())
            masked.append(~solution.converged)
        return torch.cat(errors).mean(), torch.cat(masked).double().mean()


class ParameterProbe(Callback):
    """Save each rank's parameters at the end of ``fit`` (any task)."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dump = {"params": {k: v.detach().cpu() for k, v in pl_module.state_dict().items()},
                "world_size": trainer.world_size, "step": trainer.global_step}
        self.out.mkdir(parents=True, exist_ok=True)
        torch.save(dump, self.out / f"rank{trainer.global_rank}.pt")
