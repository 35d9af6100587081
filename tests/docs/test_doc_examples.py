"""Every ```python block in docs/*.md runs, so the examples cannot rot.

Each page's blocks run in order in one namespace (later blocks may use names defined earlier on
the same page). Blocks that must not run use another fence language (```bash, ```yaml, ```text).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = sorted(DOCS.glob("*.md"))
FENCE = re.compile(r"^```(?P<lang>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, source) of every block fenced as ```python, in order."""
    blocks = []
    for match in FENCE.finditer(text):
        if match.group("lang").strip() == "python":
            line = text.count("\n", 0, match.start("body")) + 1
            blocks.append((line, match.group("body")))
    return blocks


def test_fence_parser() -> None:
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = x\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n"), (9, "y = x\n")]


def test_docs_have_examples() -> None:
    assert PAGES, f"no Markdown pages under {DOCS}"
    assert sum(len(python_blocks(p.read_text())) for p in PAGES) > 0


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(page.read_text(encoding="utf-8"))  # a page without examples passes
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    for line, source in blocks:
        code = compile(source, f"{page.name}:{line}", "exec")
        try:
            exec(code, namespace)
        except Exception as err:
            pytest.fail(f"{page.name}, python block at line {line} raised "
                        f"{type(err).__name__}: {err}", pytrace=True)
