"""Minimal pytree helpers for energy ``inputs``: tensors in tuples, lists, dicts, dataclasses."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from torch import Tensor


def tree_map(fn: Callable[[Tensor], Any], tree: Any) -> Any:
    """Apply ``fn`` to every tensor leaf of ``tree``, keeping its structure (non-tensors kept)."""
    if isinstance(tree, Tensor):
        return fn(tree)
    if isinstance(tree, dict):
        return {k: tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(tree_map(fn, v) for v in tree))
    if isinstance(tree, list | tuple):
        return type(tree)(tree_map(fn, v) for v in tree)
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        changes = {f.name: tree_map(fn, getattr(tree, f.name)) for f in dataclasses.fields(tree)}
        return dataclasses.replace(tree, **changes)
    return tree


def tree_leaves(tree: Any) -> list[Tensor]:
    """All tensor leaves of ``tree`` in a deterministic order."""
    leaves: list[Tensor] = []

    def collect(t: Tensor) -> Tensor:
        leaves.append(t)
        return t

    tree_map(collect, tree)
    return leaves


def tree_replace_leaves(tree: Any, new_leaves: list[Tensor]) -> Any:
    """Rebuild ``tree`` with its tensor leaves replaced, in :func:`tree_leaves` order."""
    it = iter(new_leaves)
    return tree_map(lambda _: next(it), tree)
