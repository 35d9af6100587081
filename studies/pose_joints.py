"""Per-joint error of the untrained and a trained pose energy on one subject.

Shows where learning helps: the detector's joints sit elsewhere than Human3.6M's (its "thorax" is
labelled Spine, and so on), which a learned mean pose and bases can absorb. Run from the
repository root, with a checkpoint of the pose recipe (e.g. a fold of ``lightning-energy cv``)::

    python -m studies.pose_joints --ckpt runs/cv/pose/fold-S8_seed-0/checkpoints/last.ckpt \
        --subject S8

The untrained and the trained task are both built by the recipe's own classes (``run_cli``).
Prints a markdown table of the root-aligned error per joint (mm) and the trained energy's mean
signed offset per joint in the subject's body frame (x right, y forward, z up): a bias common to
the subject's frames, which training on other subjects cannot remove where the subject's
skeleton differs from theirs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch
from torch import Tensor

from lightning_energy.cli import run_cli
from lightning_energy.datasets.h36m import load_h36m
from lightning_energy.datasets.pose_batch import JOINT_NAMES, PoseBatch
from lightning_energy.tasks.pose import MultiViewPoseTask
from studies.pose_diagnostics import mpjpe_without_offset, per_joint_error, per_joint_offset

RECIPE = "recipes/pose/h36m_multiview.yaml"


def _predict(task: MultiViewPoseTask, batch: PoseBatch) -> Tensor:
    return task(batch).x


def _memoised(predict: Callable[[PoseBatch], Tensor]) -> Callable[[PoseBatch], Tensor]:
    """``predict`` solving each distinct batch once (the diagnostics below revisit the frames)."""
    seen: dict[bytes, Tensor] = {}

    def cached(batch: PoseBatch) -> Tensor:
        key = batch.joints2d.numpy().tobytes()
        if key not in seen:
            seen[key] = predict(batch)
        return seen[key]

    return cached


def main(argv: Sequence[str] | None = None) -> dict[str, list]:
    """Evaluate both energies and print the per-joint table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint of the recipe's task")
    parser.add_argument("--recipe", default=RECIPE)
    parser.add_argument("--subject", default="S8")
    parser.add_argument("--stride", type=int, default=16)
    parser.add_argument("--data-root", default="../shared/data/h36m_multiview_sh")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    arrays = load_h36m(args.data_root, [args.subject], frame_stride=args.stride)
    state = torch.load(args.ckpt, map_location="cpu", weights_only=False)["state_dict"]
    errors, predictors = {}, {}
    for name, load in (("untrained", False), ("learned", True)):
        task = run_cli(["--config", args.recipe, "--trainer.logger", "false"], run=False).model
        assert isinstance(task, MultiViewPoseTask)
        if load:
            task.load_state_dict(state)
        predictors[name] = _memoised(partial(_predict, task))
        errors[name] = per_joint_error(predictors[name], arrays).tolist()
    offset = per_joint_offset(predictors["learned"], arrays)
    errors["learned_offset"] = offset.tolist()
    corrected = mpjpe_without_offset(predictors["learned"], arrays, offset)
    # One shift of every joint against the root: what a misplaced root alone would explain.
    shift = np.zeros_like(offset)
    shift[1:] = offset[1:].mean(axis=0)
    shifted = mpjpe_without_offset(predictors["learned"], arrays, shift)
    print(f"{args.subject}, every {args.stride}th frame ({len(arrays)} frames); mm")
    print("| joint | untrained | learned | change | learned mean offset (x, y, z) |")
    print("|---|---|---|---|---|")
    for j, joint in enumerate(JOINT_NAMES):
        before, after = errors["untrained"][j], errors["learned"][j]
        x, y, z = offset[j]
        print(f"| {joint} | {before:.1f} | {after:.1f} | {after - before:+.1f} | "
              f"({x:+.0f}, {y:+.0f}, {z:+.0f}) |")
    print(f"MPJPE: untrained {np.mean(errors['untrained']):.1f}, learned "
          f"{np.mean(errors['learned']):.1f}; diagnostics (in-sample, the truth's body frame): "
          f"learned without its mean per-joint offsets {corrected:.1f}, without one common "
          f"shift against the root {shifted:.1f} (shift x, y, z = "
          f"{', '.join(f'{v:+.0f}' for v in shift[1])} mm)")
    return errors


if __name__ == "__main__":
    main()
