"""The sequence DataModule scores exactly the frames the per-frame recipe tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightning_energy.datamodules import PoseDataModule, PoseSequenceDataModule

ROOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "h36m_multiview_sh"


def scored_keys(dm: PoseSequenceDataModule) -> list[tuple[str, str, int]]:
    keys = []
    for batch in dm.test_dataloader():
        scored = batch.scored.flatten()
        frames = batch.frames
        keys += [(frames.subject[i], frames.sequence[i], int(frames.frame[i]))
                 for i in scored.nonzero().flatten().tolist()]
    return keys


@pytest.mark.skipif(not ROOT.exists(), reason=f"real data absent ({ROOT})")
def test_real_test_frames_equal_the_per_frame_protocol():
    """Faulty variant: scoring every 4th frame of the subject instead of each sequence's."""
    seq = PoseSequenceDataModule(str(ROOT), fold="S8", window=16, eval_overlap=4,
                                 test_frame_stride=4, batch_size=64)
    seq.setup("test")
    per_frame = PoseDataModule(str(ROOT), fold="S8", test_frame_stride=4)
    per_frame.setup("test")
    arrays = per_frame.arrays["test"]
    expected = sorted(zip(arrays.subject.tolist(), arrays.sequence.tolist(),
                          arrays.frame.tolist(), strict=True))
    got = scored_keys(seq)
    assert len(got) == len(set(got)) == 3245
    assert sorted(got) == expected


def test_synthetic_folds_and_strides():
    dm = PoseSequenceDataModule(window=5, batch_size=3, synthetic_frames=80,
                                synthetic_sequence_length=20, test_frame_stride=2,
                                val_sequences=1)
    dm.setup(None)
    assert len(scored_keys(dm)) == 10  # one test sequence of 20 frames, every 2nd
    val_sequences = {s for b in dm.val_dataloader() for s in b.frames.sequence}
    assert len(val_sequences) == 1
    train = next(iter(dm.train_dataloader()))
    assert tuple(train.real.shape) == (3, 5)
    assert bool(train.scored.equal(train.real))
    with pytest.raises(ValueError, match="multiple of `frame_stride`"):
        PoseSequenceDataModule(frame_stride=2, test_frame_stride=3)
