"""Per-joint systematic offsets of trained pose recipes on one held-out fold, side by side.

Run from the repository root, with checkpoints of ``lightning-energy cv`` folds::

    python -m studies.pose_offsets --fold S6 \
        --run per-frame recipes/pose/h36m_multiview.yaml \
            runs/cv/pose/learned/fold-S6_seed-0/checkpoints/last.ckpt \
        --run sequence recipes/pose/h36m_sequence.yaml \
            runs/cv/pose_sequence/main/fold-S6_seed-0/checkpoints/last.ckpt

Each run is the recipe's own task, DataModule and Trainer (``run_cli`` with
``--data.init_args.fold``): ``Trainer.predict`` with the checkpoint on the fold's test split,
scored on the frames the task's metrics score (``metric_inputs``). Prints, per joint, each
run's mean error in the truth's body frame (x right along the hips, y forward, z up;
``body_frame_errors``) — the bias shared by the subject's frames — and, per run, MPJPE, the
mean bias norm (``systematic_offset``) and the MPJPE left without the biases.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
from torch import Tensor

from lightning_energy.cli import run_cli
from lightning_energy.datasets.pose_batch import JOINT_NAMES
from lightning_energy.metrics import mpjpe, systematic_offset
from lightning_energy.metrics.functional import body_frame_errors


def predictions(recipe: str, ckpt: str | None, fold: str,
                overrides: Sequence[str] = ()) -> tuple[Tensor, Tensor]:
    """Predicted and true poses (N, J, 3), mm, of the fold's scored test frames.

    The recipe's Trainer predicts the fold's test split (``Trainer.predict`` with ``ckpt``, the
    DataModule's ``predict_dataloader``); each batch's solution is then scored on the frames the
    task's metrics score (``metric_inputs``). ``overrides`` are further recipe arguments.
    """
    cli = run_cli(["--config", recipe, "--data.init_args.fold", fold, "--trainer.logger", "false",
                   "--trainer.enable_progress_bar", "false", *overrides], run=False)
    task, data = cli.model, cli.datamodule
    solutions = cli.trainer.predict(task, datamodule=data, ckpt_path=ckpt)
    preds, targets = [], []
    for solution, batch in zip(solutions, data.predict_dataloader(), strict=True):
        batch = task.transfer_batch_to_device(batch, solution.x.device, 0)
        pred, target = task.metric_inputs(solution, batch)[:2]
        preds.append(pred.double().cpu())
        targets.append(target.double().cpu())
    return torch.cat(preds), torch.cat(targets)


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """Evaluate every run and print the per-joint table and the summary lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fold", required=True, help="held-out subject, e.g. S6")
    parser.add_argument("--run", nargs=3, action="append", required=True,
                        metavar=("NAME", "RECIPE", "CKPT"), help="a recipe and its checkpoint")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    biases, summary = {}, {}
    for name, recipe, ckpt in args.run:
        pred, target = predictions(recipe, ckpt, args.fold)
        biases[name] = body_frame_errors(pred, target).mean(0)
        summary[name] = {"frames": pred.shape[0], "mpjpe": float(mpjpe(pred, target)),
                         "offset": float(systematic_offset(pred, target)),
                         "without": float(systematic_offset(pred, target, remainder=True))}
    names = list(biases)
    print(f"{args.fold}: mean error per joint in the truth's body frame (x, y, z), mm")
    print("| joint | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for j, joint in enumerate(JOINT_NAMES):
        cells = [f"({', '.join(f'{v:+.0f}' for v in biases[n][j].tolist())}) "
                 f"{float(biases[n][j].norm()):.0f}" for n in names]
        print(f"| {joint} | " + " | ".join(cells) + " |")
    for name, row in summary.items():
        print(f"{name}: {row['frames']} frames, MPJPE {row['mpjpe']:.1f}, mean bias "
              f"{row['offset']:.1f}, MPJPE without the biases {row['without']:.1f}")
    return summary


if __name__ == "__main__":
    main()
