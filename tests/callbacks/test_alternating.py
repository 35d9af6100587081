import pytest
import pytorch_lightning as pl
import torch

from lightning_energy.callbacks import AlternatingUpdates
from lightning_energy.callbacks.alternating import in_group
from lightning_energy.datamodules import PoseDataModule
from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses
from lightning_energy.energies.pose import MultiViewPoseEnergy
from lightning_energy.tasks import MultiViewPoseTask


def _task() -> MultiViewPoseTask:
    energy = MultiViewPoseEnergy(None, num_components=1, learn=["mean", "weights", "prior"])
    return MultiViewPoseTask(energy.double())


def test_patterns_match_names_submodules_and_wildcards():
    assert in_group("layer.energy.mean", ["layer.energy.mean"])
    assert in_group("layer.energy.mean", ["layer"])
    assert not in_group("layer.energy.mean", ["layer.energy.me"])
    assert in_group("layer.energy.log_prior", ["layer.energy.log_*"])
    assert not in_group("backbone.0.weight", ["layer"])


@pytest.mark.parametrize(("step", "resting"),
                         [(0, "log"), (1, "log"), (2, "mean"), (3, "mean"), (5, "log")])
def test_only_the_active_group_keeps_its_gradient(step: int, resting: str):
    """Faulty variant caught: dropping the gradients of the active group instead of the others."""
    task = _task()
    callback = AlternatingUpdates([["layer.energy.mean"], ["layer.energy.log_*"]], every=2)
    batch = generate_synthetic_poses(4, seed=2).to_batch(dtype=torch.float64)
    task.loss(task(batch), batch).backward()

    class Trainer:
        global_step = step

    callback.on_before_optimizer_step(Trainer(), task, torch.optim.SGD(task.parameters(), 0.1))
    energy = task.pose_energy
    rest = [energy.mean] if resting == "mean" else [energy.log_weights, energy.log_prior]
    moving = [energy.log_weights, energy.log_prior] if resting == "mean" else [energy.mean]
    assert all(p.grad is None for p in rest)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in moving)


def test_a_fit_moves_one_group_per_phase():
    task = _task()
    start = {n: p.detach().clone() for n, p in task.named_parameters()}
    callback = AlternatingUpdates([["layer.energy.mean"], ["layer.energy.log_*"]], every=1)
    datamodule = PoseDataModule(batch_size=4, synthetic_frames=8)
    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0, callbacks=[callback])
    trainer.fit(task, datamodule=datamodule)
    assert not torch.equal(start["layer.energy.mean"], task.pose_energy.mean.detach())
    assert torch.equal(start["layer.energy.log_weights"], task.pose_energy.log_weights.detach())


def test_bad_groups_are_named():
    with pytest.raises(ValueError, match="groups"):
        AlternatingUpdates([["layer"]])
    with pytest.raises(ValueError, match="every"):
        AlternatingUpdates([["a"], ["b"]], every=0)
    callback = AlternatingUpdates([["layer.energy.mean"], ["nonexistent"]])
    with pytest.raises(ValueError, match="'nonexistent'"):
        callback.setup(pl.Trainer(logger=False), _task(), "fit")
