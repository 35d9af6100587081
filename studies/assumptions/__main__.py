"""``python -m studies.assumptions --out docs/study``: every number, figure and the page."""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

from studies.assumptions import figures, page
from studies.assumptions.run import ADAM_STEP, Config, run_all, run_training, tiny
from studies.assumptions.summary import summarise


def main(argv: list[str] | None = None) -> dict:
    """Run the study into ``--out``; return the numbers written to ``numbers.json``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/study"))
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run")
    args = parser.parse_args(argv)
    cfg = tiny() if args.tiny else Config()
    # Unconverged and masked solves are what this study counts, not something to warn about.
    warnings.simplefilter("ignore", RuntimeWarning)
    start = time.perf_counter()
    results = run_all(cfg)
    training = run_training(cfg)
    numbers = summarise(results)
    numbers["stability"] = training["stability"]
    numbers["cost"] = {"grid": training["grid"], "step_cost": training["step_cost"]}
    numbers["trajectories"] = {"regression": training["trajectories"],
                               "kde": [seed["training"]["theta"] for seed in results["kde"]]}
    config = {"steps": cfg.steps, "stability_steps": cfg.stability_steps,
              "num_train": cfg.num_train, "batch": cfg.batch, "every": cfg.every,
              "adam_lr": ADAM_STEP,
              "scaling_batch": cfg.scaling_batch, "scaling_repeats": cfg.scaling_repeats,
              "seeds": list(cfg.seeds), "n": cfg.n, "m": cfg.m,
              "num_eval": cfg.num_eval, "adam_step": ADAM_STEP * math.sqrt(cfg.n + 1),
              "drift_size": min(cfg.sizes, key=lambda s: abs(s - ADAM_STEP * math.sqrt(cfg.n + 1)))}
    config["run_seconds"] = f"{time.perf_counter() - start:.0f}"
    numbers["config"] = config
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "numbers.json").write_text(json.dumps(numbers, indent=1, ensure_ascii=False))
    figures.convexity(results, args.out)
    figures.fidelity(numbers, args.out)
    figures.drift(numbers, config["adam_step"], args.out)
    figures.stability(numbers["stability"], args.out)
    figures.trajectories(numbers["trajectories"], args.out)
    figures.cost(numbers["cost"], args.out)
    page.write(numbers, config, args.out)
    return numbers


if __name__ == "__main__":
    main()
