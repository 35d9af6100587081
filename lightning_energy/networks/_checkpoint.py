"""Reading network weights from local files: plain ``save`` files and Lightning checkpoints."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

FORMAT = "lightning_energy.KeypointDetector"
_SHOWN = 8  # keys listed in an error message


def read_checkpoint(path: str | Path) -> Any:
    """Unpickle a local file: ``weights_only=True`` first, full unpickling if that refuses it.

    Lightning checkpoints may pickle hyper-parameter objects that the safe loader rejects.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        ValueError: If the file cannot be read as a torch checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No checkpoint file at {path}: expected a file written by KeypointDetector.save or "
            "a Lightning checkpoint (weights are only read from local files)."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass
    except Exception as err:
        raise ValueError(f"Cannot read {path} as a torch checkpoint: {err}") from err
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ValueError(f"Cannot read {path} as a torch checkpoint: {err}") from err


def _shorten(keys: list[str]) -> str:
    more = f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
    return f"{keys[:_SHOWN]}{more}"


def _candidate_prefixes(theirs: Mapping[str, Any], ours: Mapping[str, Any]) -> list[str]:
    """Prefixes p such that p + (one of our keys) is a key of ``theirs``, best match first."""
    anchor = next(iter(ours))
    prefixes = {
        key[: len(key) - len(anchor)]
        for key in theirs
        if key.endswith(anchor) and (key == anchor or key[-len(anchor) - 1] == ".")
    }
    score = {p: sum(p + k in theirs for k in ours) for p in prefixes}
    return sorted(prefixes, key=lambda p: (-score[p], len(p)))


def select_state_dict(
    content: Any, ours: Mapping[str, Tensor], path: str | Path
) -> dict[str, Tensor]:
    """Our part of a checkpoint's state dict, with the prefix (e.g. ``backbone.``) removed.

    Args:
        content: The unpickled file: a dict with a ``state_dict`` entry (our ``save`` format or a
            Lightning checkpoint) or a bare state dict.
        ours: The module's own state dict (only its keys are used).
        path: The file, for messages.

    Raises:
        ValueError: If no prefix gives exactly our keys; names the missing and unexpected keys.
    """
    theirs = content.get("state_dict", content) if isinstance(content, Mapping) else None
    if not isinstance(theirs, Mapping) or not all(isinstance(k, str) for k in theirs):
        raise ValueError(
            f"{path} holds no state dict: expected a file written by KeypointDetector.save or a "
            f"Lightning checkpoint with a `state_dict`, got {type(content).__name__}."
        )
    prefixes = _candidate_prefixes(theirs, ours) or [""]
    prefix = prefixes[0]
    under = {k[len(prefix):]: v for k, v in theirs.items() if k.startswith(prefix)}
    missing = [k for k in ours if k not in under]
    unexpected = [k for k in under if k not in ours]
    if missing or unexpected:
        raise ValueError(
            f"The state dict in {path} does not match this network (prefix {prefix!r}): "
            f"missing keys {_shorten(missing)}, unexpected keys {_shorten(unexpected)}. "
            "Was it saved for another configuration (num_joints, stacks, depth, channels)?"
        )
    return dict(under)
