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
        dump = {"params": {k: v.detach().cpu() for k, v in pl_module.state_dict().items()},
                "val_abs_error": trainer.callback_metrics["val/abs_error"].cpu(),
                "world_size": trainer.world_size}
        if trainer.global_rank == 0:
            dump["reference"] = self._full_validation(trainer, pl_module)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.save(dump, self.out / f"rank{trainer.global_rank}.pt")

    @torch.no_grad()
    def _full_validation(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> torch.Tensor:
        errors = []
        for batch in torch.utils.data.DataLoader(trainer.datamodule.val_set, batch_size=64):
            solution = pl_module(batch)
            errors.append((solution.x[:, 0] - batch["location"]).abs())
        return torch.cat(errors).mean()
