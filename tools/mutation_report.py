"""Mutation score per module from mutmut's results in ``mutants/`` (see tools/mutation.sh).

Score = killed / (killed + survived + no tests + timeout), as mutmut counts them; mutants listed
as equivalent in docs/notes/mutation.md are taken out of the denominator with ``--equivalent``.

    python tools/mutation_report.py [--survivors] [--equivalent docs/notes/mutation.md]
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

KILLED = {1, 3}
SURVIVED = {0}
NO_TESTS = {5, 33}
TIMEOUT = {24, -24, 36, 152, 255}


def results(root: Path) -> dict[str, dict[str, int | None]]:
    """Module → mutant name → mutmut exit code (None: not run)."""
    out = {}
    for meta in sorted(root.glob("lightning_energy/**/*.py.meta")):
        codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        if codes:
            module = str(meta.relative_to(root)).removesuffix(".py.meta").replace("/", ".")
            out[module] = codes
    return out


def equivalent_names(notes: Path | None) -> set[str]:
    """Mutant names marked ``equivalent`` in the notes' triage table."""
    if notes is None or not notes.is_file():
        return set()
    names = set()
    for line in notes.read_text().splitlines():
        match = re.match(r"\|\s*`?([\w.ǁ]+__mutmut_\d+)`?\s*\|\s*equivalent", line)
        if match:
            names.add(match.group(1))
    return names


def main() -> None:
    """Print the table (and the survivors)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("mutants"))
    parser.add_argument("--survivors", action="store_true", help="list surviving mutants")
    parser.add_argument("--equivalent", type=Path, default=None, help="triage notes")
    args = parser.parse_args()
    equivalent = equivalent_names(args.equivalent)
    total: Counter[str] = Counter()
    print("| module | mutants | killed | survived | no tests | timeout | equivalent | score |")
    print("|---|---|---|---|---|---|---|---|")
    survivors = []
    for module, codes in results(args.root).items():
        count: Counter[str] = Counter()
        for name, code in codes.items():
            if code is None:
                count["not run"] += 1
            elif code in KILLED:
                count["killed"] += 1
            elif name in equivalent:
                count["equivalent"] += 1
            elif code in SURVIVED | NO_TESTS | TIMEOUT:
                count["survived" if code in SURVIVED else
                      "no tests" if code in NO_TESTS else "timeout"] += 1
                survivors.append(name)
        total.update(count)
        print(_row(module, count))
    print(_row("**all**", total))
    if args.survivors:
        print("\n".join(survivors))


def _row(name: str, count: Counter[str]) -> str:
    live = count["killed"] + count["survived"] + count["no tests"] + count["timeout"]
    score = f"{100 * count['killed'] / live:.1f}%" if live else "–"
    run = sum(count.values()) - count["not run"]
    return (f"| {name} | {run} | {count['killed']} | {count['survived']} | {count['no tests']} "
            f"| {count['timeout']} | {count['equivalent']} | {score} |")


if __name__ == "__main__":
    main()
