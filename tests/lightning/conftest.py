import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOY = str(REPO / "recipes" / "toy" / "robust_mean.yaml")
CPU_DEBUG = str(REPO / "recipes" / "trainer" / "cpu_debug.yaml")


@pytest.fixture(autouse=True)
def _no_wandb_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()  # a CLI process ends its run at exit; tests share one process
