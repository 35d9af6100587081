"""Offline-first Weights & Biases logging: never blocks on the network, never asks for a key."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only

log = logging.getLogger(__name__)


def wandb_credentials_available() -> bool:
    """Whether an API key is configured (``WANDB_API_KEY`` or a netrc entry for api.wandb.ai)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return path.is_file() and netrc.netrc(path).authenticators("api.wandb.ai") is not None
    except (netrc.NetrcParseError, OSError):
        return False


class OfflineFirstWandbLogger(WandbLogger):
    """A ``WandbLogger`` that runs offline unless wandb is configured to go online.

    With credentials or ``WANDB_MODE`` set, behaves exactly like ``WandbLogger``. With neither,
    it logs offline into ``save_dir`` and says so in one log line when the run starts; sync the
    run later with ``wandb sync <save_dir>/wandb/offline-run-…``. ``log_model=True`` stores the
    last and best checkpoints as a model artifact in offline mode too (synced with the run).
    Nothing is written before the run starts (a command that fails first leaves no run folder).

    Args:
        project: wandb project.
        save_dir: Folder for the local run files (``{save_dir}/wandb/…``). ``None``: the
            trainer's ``default_root_dir`` when ``lightning-energy`` builds the trainer (so each
            experiment keeps its runs beside its checkpoints), else ``runs``.
        name: Run name.
        log_model: Store checkpoints as artifacts (``True``: at the end of training).
        offline: Force offline mode (``None``: decide from the environment as above).
        tags: Run tags.
        group: Run group (e.g. a cross-validation experiment).
    """

    def __init__(
        self,
        project: str = "lightning-energy",
        save_dir: str | None = None,
        name: str | None = None,
        log_model: bool = False,
        offline: bool | None = None,
        tags: list[str] | None = None,
        group: str | None = None,
    ) -> None:
        if offline is None:
            offline = not os.environ.get("WANDB_MODE") and not wandb_credentials_available()
        os.environ.setdefault("WANDB_SILENT", "true")
        self._announce, self._save_dir_given = offline, save_dir is not None
        self._offline_artifacts = offline and log_model
        extra: dict[str, Any] = {"tags": tags, "group": group}
        super().__init__(project=project, save_dir=save_dir or "runs", name=name,
                         offline=offline, log_model=log_model and not offline, **extra)
        # WandbLogger always passes `anonymous`, which wandb >= 0.19 warns has no effect.
        self._wandb_init.pop("anonymous", None)
        self._checkpoint_callback: Any = None

    def default_save_dir(self, root: str) -> None:
        """Put the run under ``root`` unless ``save_dir`` was given or the run has started."""
        if not self._save_dir_given and self._experiment is None:
            self._save_dir = self._wandb_init["dir"] = os.fspath(root)

    @property
    def experiment(self) -> Any:  # noqa: D102
        if self._experiment is None and getattr(rank_zero_only, "rank", 0) == 0:
            Path(str(self.save_dir)).mkdir(parents=True, exist_ok=True)
            if self._announce:
                _announce_offline(str(self.save_dir))
        return super().experiment

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:  # noqa: D102
        if self._offline_artifacts:
            self._checkpoint_callback = checkpoint_callback
            return
        super().after_save_checkpoint(checkpoint_callback)

    @rank_zero_only
    def finalize(self, status: str) -> None:  # noqa: D102
        callback = self._checkpoint_callback
        if self._offline_artifacts and callback is not None and status == "success":
            import wandb

            artifact = wandb.Artifact(f"model-{self.experiment.id}", type="model")
            for path in {callback.last_model_path, callback.best_model_path} - {"", None}:
                if Path(path).is_file():
                    artifact.add_file(path, name=Path(path).name)
            self.experiment.log_artifact(artifact, aliases=["latest"])
        super().finalize(status)


@rank_zero_only
def _announce_offline(save_dir: str) -> None:
    log.warning("wandb: no credentials or WANDB_MODE found; logging offline to %s "
                "(upload later with `wandb sync %s/wandb/offline-run-*`).", save_dir, save_dir)
