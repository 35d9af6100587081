"""The docs site builds with `mkdocs build --strict`: no broken link, anchor or docstring."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_site_builds_strict(tmp_path: Path) -> None:
    """Catches: a nav entry, link or anchor that points nowhere, or a reference page naming an
    object mkdocstrings cannot load."""
    if importlib.util.find_spec("mkdocs") is None:
        # A skip would hide a broken site in CI, which installs the dev extra.
        pytest.fail('mkdocs is not installed: pip install -e ".[docs]" (or ".[dev]")')
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # mkdocs-material's banner, not ours
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    assert (tmp_path / "reference" / "tasks" / "index.html").is_file()
