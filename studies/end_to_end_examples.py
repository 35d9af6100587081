"""Held-out crops with the detector's keypoints before and after end-to-end training.

Composes public classes only: the recipes' DataModule (validation crops, fixed per view), and the
detector of two checkpoints (stage 2 "staged", whose detector is stage 1's, and stage 3). Each row
is one frame's 4 views; each view is shown twice, the keypoints of the first checkpoint (left)
and of the second (right), ground truth as small green dots, predictions as red (right side of
the body), blue (left) and yellow (centre) squares.

    python studies/end_to_end_examples.py --before runs/pose_e2e/staged/checkpoints/last.ckpt \
        --after runs/pose_e2e/end_to_end/checkpoints/last.ckpt --out docs/results/end_to_end.png
"""

from __future__ import annotations

import argparse

import torch
from PIL import Image, ImageDraw

from lightning_energy.datamodules import PoseImageDataModule
from lightning_energy.datasets.pose_render import image_to_crop
from lightning_energy.networks import KeypointDetector

RIGHT, LEFT = (1, 2, 3, 14, 15, 16), (4, 5, 6, 11, 12, 13)
SCALE = 4  # pixels of the figure per pixel of a 64-px crop


def colour(joint: int) -> tuple[int, int, int]:
    """Red for the body's right side, blue for its left, yellow for the centre line."""
    return (230, 40, 40) if joint in RIGHT else (40, 90, 240) if joint in LEFT else (240, 220, 40)


def draw(image: torch.Tensor, truth: torch.Tensor, found: torch.Tensor) -> Image.Image:
    """One crop (3, S, S) in [0, 1], upscaled, with ground-truth and found keypoints (J, 2)."""
    array = (image.clamp(0, 1).permute(1, 2, 0) * 255).byte().numpy()
    size = array.shape[0] * SCALE
    picture = Image.fromarray(array).resize((size, size), Image.NEAREST)
    pen = ImageDraw.Draw(picture)
    for j, (u, v) in enumerate(found.tolist()):
        pen.rectangle([u * SCALE - 3, v * SCALE - 3, u * SCALE + 3, v * SCALE + 3],
                      outline=colour(j), width=2)
    for u, v in truth.tolist():
        pen.ellipse([u * SCALE - 2, v * SCALE - 2, u * SCALE + 2, v * SCALE + 2],
                    fill=(40, 220, 60))
    return picture


def detector_of(path: str, channels: int) -> KeypointDetector:
    """The detector of a task checkpoint (its ``backbone.`` weights), in eval mode."""
    detector = KeypointDetector(stacks=2, depth=3, channels=channels, checkpoint=path)
    return detector.eval()


def main() -> None:
    """Draw the sheet of crops named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="checkpoint of the earlier stage")
    parser.add_argument("--after", required=True, help="checkpoint of the later stage")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--root", default="../shared/data/h36m_multiview_sh")
    parser.add_argument("--subject", default="S8")
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--channels", type=int, default=32)
    options = parser.parse_args()
    data = PoseImageDataModule(root=options.root, train_subjects=[options.subject],
                               val_subjects=[options.subject], val_frame_stride=64)
    data.setup("validate")
    frames = data.datasets["val"]
    # Evenly over the subject's sequences, away from their first frames (often a standing start).
    picks = [int((k + 0.5) * len(frames) / options.frames) for k in range(options.frames)]
    batch = frames.__getitems__(picks)[0]
    truth = image_to_crop(batch.joints2d, batch.crop.unsqueeze(-2))
    images = batch.images.flatten(0, 1)
    with torch.no_grad():
        found = [detector_of(path, options.channels)(images).keypoints.reshape(truth.shape)
                 for path in (options.before, options.after)]
    tiles = [[draw(batch.images[f, c], truth[f, c], keypoints[f, c])
              for c in range(batch.images.shape[1]) for keypoints in found]
             for f in range(batch.images.shape[0])]
    side = tiles[0][0].width
    sheet = Image.new("RGB", (side * len(tiles[0]), side * len(tiles)), "white")
    for row, pictures in enumerate(tiles):
        for column, picture in enumerate(pictures):
            sheet.paste(picture, (column * side, row * side))
    sheet.save(options.out)


if __name__ == "__main__":
    main()
