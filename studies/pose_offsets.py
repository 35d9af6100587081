"""Per-joint systematic offsets of trained pose recipes on one held-out fold, side by side.

Run from the repository root, with checkpoints of ``lightning-energy cv`` folds::

    python -m studies.pose_offsets --fold S6 \
        --run per-frame recipes/pose/h36m_multiview.yaml \
            runs/cv/pose/learned/fold-S6_seed-0/checkpoints/last.ckpt \
        --run sequence recipes/pose/h36m_sequence.yaml \
            runs/cv/pose_sequence/main/fold-S6_seed-0/checkpoints/last.ckpt

Each run is the recipe's own task and DataModule (``run_cli`` with ``--data.init_args.fold``),
the checkpoint's weights, the fold's test split predicted by the task's forward and scored on
the frames its metrics score (``metric_inputs``). Prints, per joint, each run's mean error in the
truth's body frame (x right along the hips, y forward, z up; ``body_frame_errors``) — the bias
shared by the subject's frames — and, per run, MPJPE, the mean bias norm (``systematic_offset``)
and the MPJPE left without the biases.
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


def predictions(recipe: str, ckpt: str, fold: str) -> tuple[Tensor, Tensor]:
    """Predicted and true poses (N, J, 3), mm, of the fold's scored test frames."""
    cli = run_cli(["--config", recipe, "--data.init_args.fold", fold,
                   "--trainer.logger", "false"], run=False)
    task, data = cli.model, cli.datamodule
    task.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"])
    task.eval()
    data.setup("test")
    preds, targets = [], []
    with torch.no_grad():
        for batch in data.test_dataloader():
            pred, target = task.metric_inputs(task(batch), batch)[:2]
            preds.append(pred.double())
            targets.append(target.double())
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
