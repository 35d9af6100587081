"""DataModule of the tracker-fusion task: training windows, whole sequences for evaluation."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Sampler, WeightedRandomSampler

from lightning_energy.datasets.otb import TrackingSequences, list_sequences, list_trackers
from lightning_energy.datasets.splits import kfold_sequences, train_val_split
from lightning_energy.datasets.tracking_batch import TrackingBatch, collate_tracking
from lightning_energy.datasets.tracking_synthetic import simulate_tracking
from lightning_energy.datasets.tracking_windows import TrackingWindows
from lightning_energy.errors import DatasetNotFoundError


class TrackingDataModule(pl.LightningDataModule):
    """Tracker boxes and ground truth from an OTB-layout folder, or simulated.

    Sequences are split by video (never frames of one video on both sides). The test set is the
    held-out fold of a k-fold split of the ``split`` sequences when ``fold`` is given; else the
    ``test_sequences`` (removed from training); else every ``split`` sequence (for a test-only
    run, e.g. ``root`` pointing at other data). Validation is carved out of the training
    sequences. Training batches are shuffled windows (:class:`TrackingBatch`, B = ``batch_size``,
    T = ``window``); validation, test and predict batches are whole sequences, one per batch
    (B = 1, T = the sequence length).

    Args:
        root: OTB-layout folder (``groundtruth/``, ``results/``, optional ``sequences.csv``,
            ``trackers.csv``), e.g. ``../shared/data/otb100_tracker_fusion``; None simulates data.
        trackers: Trackers to use, in this order on the K axis; None uses all, in the order of
            ``trackers.csv`` (simulated: ``sim00``, ``sim01``, ...).
        window: Frames per training window.
        stride: Frames between training window starts; None means ``window // 2``.
        batch_size: Training windows per batch.
        num_workers: DataLoader worker processes.
        fold: Held-out fold of a ``num_folds``-fold split, used as the test set; None for no
            k-fold.
        num_folds: Number of folds.
        val_fraction: Share of the training sequences moved to validation (whole videos).
        seed: Seed of the splits and of the simulation.
        split: Value of the ``split`` column of ``sequences.csv`` whose sequences are used.
        test_sequences: Explicit test sequences (any split of ``root``); not with ``fold``.
        synthetic_sequences: Number of simulated sequences (``root`` None).
        synthetic_length: Frames per simulated sequence.
        synthetic_trackers: Number of simulated trackers.
        balanced: Draw training windows (with replacement) so that every training sequence is
            equally likely (:meth:`TrackingWindows.sequence_balanced_weights`), matching the
            sequence-averaged metrics; else plain shuffling.

    Example:
        >>> dm = TrackingDataModule(synthetic_sequences=4, synthetic_length=40, window=16,
        ...                         batch_size=2, val_fraction=0.25, fold=0, num_folds=4)
        >>> dm.setup("fit")
        >>> tuple(next(iter(dm.train_dataloader())).boxes.shape)
        (2, 16, 8, 4)
    """

    def __init__(
        self,
        root: str | None = None,
        trackers: list[str] | None = None,
        window: int = 64,
        stride: int | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        fold: int | None = None,
        num_folds: int = 5,
        val_fraction: float = 0.15,
        seed: int = 0,
        split: str = "dev",
        test_sequences: list[str] | None = None,
        synthetic_sequences: int = 40,
        synthetic_length: int = 300,
        synthetic_trackers: int = 8,
        balanced: bool = False,
    ) -> None:
        super().__init__()
        self._check_arguments(window, stride, batch_size, fold, num_folds, test_sequences)
        self.save_hyperparameters()
        self.root = root
        self.trackers = trackers
        self.window = window
        self.stride = stride if stride is not None else max(window // 2, 1)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.fold = fold
        self.num_folds = num_folds
        self.val_fraction = val_fraction
        self.seed = seed
        self.split = split
        self.test_sequences = test_sequences
        self.synthetic_sequences = synthetic_sequences
        self.synthetic_length = synthetic_length
        self.synthetic_trackers = synthetic_trackers
        self.balanced = balanced
        self.tracker_names: list[str] | None = self._initial_tracker_names()
        self.num_trackers: int | None = (
            len(self.tracker_names) if self.tracker_names is not None else None
        )
        self.data: TrackingSequences | None = None
        self.splits: dict[str, list[str]] = {}

    @staticmethod
    def _check_arguments(
        window: int,
        stride: int | None,
        batch_size: int,
        fold: int | None,
        num_folds: int,
        test_sequences: list[str] | None,
    ) -> None:
        if window < 1 or (stride is not None and stride < 1) or batch_size < 1:
            raise ValueError(
                f"Expected window, stride and batch_size >= 1, got {window}, {stride}, "
                f"{batch_size}."
            )
        if num_folds < 2 or (fold is not None and not 0 <= fold < num_folds):
            raise ValueError(f"Expected num_folds >= 2 and 0 <= fold < num_folds, got {fold}.")
        if fold is not None and test_sequences is not None:
            raise ValueError("Give either `fold` or `test_sequences`, not both.")

    def _initial_tracker_names(self) -> list[str] | None:
        if self.trackers is not None:
            return list(self.trackers)
        if self.root is None:
            return [f"sim{k:02d}" for k in range(self.synthetic_trackers)]
        try:
            return list_trackers(self.root)
        except DatasetNotFoundError:
            return None  # reported by prepare_data/setup

    @staticmethod
    def count_trackers(
        root: str | None, trackers: list[str] | None = None, synthetic_trackers: int = 8
    ) -> int:
        """K for these arguments, without loading any boxes (for building a model).

        Raises:
            DatasetNotFoundError: If ``root`` is given, ``trackers`` is None and ``root`` is
                missing.
        """
        if trackers is not None:
            return len(trackers)
        if root is None:
            return synthetic_trackers
        return len(list_trackers(root))

    def prepare_data(self) -> None:
        """Check that ``root`` holds OTB-layout data (nothing is downloaded)."""
        if self.root is not None:
            list_sequences(self.root, self.split)

    def _load(self) -> TrackingSequences:
        if self.root is None:
            data = simulate_tracking(
                self.synthetic_sequences,
                self.synthetic_length,
                self.synthetic_trackers,
                seed=self.seed,
            )
            return data.subset(trackers=self.trackers)
        names = list_sequences(self.root, self.split)
        extra = [name for name in self.test_sequences or [] if name not in names]
        missing = sorted(set(extra) - set(list_sequences(self.root, None)))
        if missing:
            raise DatasetNotFoundError(
                f"Test sequences {missing} are not in {Path(self.root) / 'groundtruth'}."
            )
        return TrackingSequences.from_root(self.root, names + extra, self.trackers)

    def _split_names(self, data: TrackingSequences) -> dict[str, list[str]]:
        held_out = set(self.test_sequences or [])
        names = [name for name in data.names if name not in held_out]
        if not names:
            raise ValueError(
                f"No training sequences left: `test_sequences` holds all of {sorted(held_out)}.")
        if self.fold is not None:
            pool, test = kfold_sequences(names, self.num_folds, self.fold, self.seed, data.groups)
        elif self.test_sequences is not None:
            pool, test = names, list(self.test_sequences)
        else:
            pool, test = names, list(names)
        # Each fold draws its own validation videos (seed + fold), as a nested split should.
        train, val = train_val_split(pool, self.val_fraction, self.seed + (self.fold or 0),
                                     data.groups)
        return {"train": train, "val": val, "test": test}

    def setup(self, stage: str | None = None) -> None:
        """Load (or simulate) the sequences once and build the splits; every stage at once."""
        if self.data is not None:
            return
        data = self._load()
        self.splits = self._split_names(data)
        self.tracker_names = list(data.trackers)
        self.num_trackers = data.num_trackers
        self.data = data
        self.train_dataset = TrackingWindows(data.subset(self.splits["train"]), self.window,
                                             self.stride)
        self.val_dataset = TrackingWindows(data.subset(self.splits["val"]))
        self.test_dataset = TrackingWindows(data.subset(self.splits["test"]))

    def _loader(self, dataset: TrackingWindows, batch_size: int, shuffle: bool,
                sampler: Sampler[int] | None = None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_tracking,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader[TrackingBatch]:
        """Shuffled (or sequence-balanced) windows of ``window`` frames, ``batch_size`` each."""
        if not self.balanced:
            return self._loader(self.train_dataset, self.batch_size, shuffle=True)
        weights = self.train_dataset.sequence_balanced_weights()
        sampler = WeightedRandomSampler(weights, len(weights))
        return self._loader(self.train_dataset, self.batch_size, shuffle=False, sampler=sampler)

    def val_dataloader(self) -> DataLoader[TrackingBatch]:
        """Whole validation sequences, one per batch."""
        return self._loader(self.val_dataset, 1, shuffle=False)

    def test_dataloader(self) -> DataLoader[TrackingBatch]:
        """Whole test sequences, one per batch."""
        return self._loader(self.test_dataset, 1, shuffle=False)

    def predict_dataloader(self) -> DataLoader[TrackingBatch]:
        """The test sequences, whole, one per batch."""
        return self._loader(self.test_dataset, 1, shuffle=False)

    def sequences(self, *splits: str) -> TrackingSequences:
        """The sequences of one or more splits (``"train"``, ``"val"``, ``"test"``), whole.

        Raises:
            RuntimeError: Before :meth:`setup`.
            ValueError: For an unknown split.
        """
        if self.data is None:
            raise RuntimeError("Call `setup` before asking for `sequences`.")
        unknown = set(splits) - set(self.splits)
        if not splits or unknown:
            raise ValueError(f"Expected splits among {sorted(self.splits)}, got {list(splits)}.")
        return self.data.subset([name for split in splits for name in self.splits[split]])

    def eval_dataloader(self, split: str) -> DataLoader[TrackingBatch]:
        """Whole sequences of ``split``, one per batch (e.g. to score a grid on training data)."""
        return self._loader(TrackingWindows(self.sequences(split)), 1, shuffle=False)
