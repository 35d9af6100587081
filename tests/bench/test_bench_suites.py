"""Every ``lightning-energy bench`` suite runs on a tiny setting and writes well-formed JSON.

Not timed: the numbers are for docs/benchmarks.md, measured by the suites themselves.
"""

import json

import pytest

from lightning_energy.cli import BENCHMARKS, main

TINY = {
    "adjoints": ["--batch-size", "4", "--steps", "2", "--repeats", "1", "--reference-batch", "2",
                 "--profile"],
    "pose": ["--batch-sizes", "2", "--steps", "2", "--repeats", "1", "--compare", "theseus",
             "--agreement-batch", "2", "--agreement-steps", "3", "--backwards", "implicit"],
    "tracking": ["--frames", "24", "--trackers", "3", "--dense-max", "24"],
    "scaling": ["--variables", "6", "8", "--hidden", "1", "3", "--batch-size", "2", "--steps",
                "2", "--repeats", "1"],
    "sequence": ["--frames", "2", "3", "--batch-size", "1", "--steps", "1", "--dense-max", "2"],
    "render": ["--sizes", "16", "24", "--frames", "2"],
}
FIELDS = {
    "adjoints": {"adjoint", "hessian", "batch_size", "forward_ms", "backward_ms",
                 "peak_memory_mb"},
    "pose": {"library", "backward", "batch_size", "forward_ms", "backward_ms", "step_ms",
             "peak_memory_mb"},
    "tracking": {"frames", "linear_solver", "forward_ms", "backward_ms", "converged"},
    "scaling": {"variables", "parameters", "mode", "forward_ms", "backward_ms", "memory_mb"},
    "sequence": {"frames", "path", "forward_ms", "backward_ms", "curvature_mb", "graph_mb"},
    "render": {"image_size", "crops", "crops_per_s", "ms_per_crop", "threads"},
}


def test_every_suite_is_covered():
    assert set(TINY) == set(BENCHMARKS)


@pytest.mark.parametrize("suite", sorted(TINY))
def test_suite_writes_records(suite, capsys):
    main(["bench", suite, *TINY[suite], "--format", "json"])
    records = json.loads(capsys.readouterr().out)
    if suite == "render":  # no forward and backward: crops drawn per second
        assert [(r["image_size"], r["crops"]) for r in records] == [(16, 8), (24, 8)]
        assert all(r["crops_per_s"] > 0 and r["threads"] == 1 for r in records)
        return
    timed = [r for r in records if "forward_ms" in r]
    assert timed, records
    for record in timed:
        assert FIELDS[suite] <= set(record), record
        assert record["forward_ms"] > 0
        assert record["backward_ms"] >= 0
    if suite == "adjoints":  # --profile: every layer row counted its operators
        profiled = [r["profile"] for r in timed if r["adjoint"] != "per-sample reference"]
        assert len(profiled) == len(timed) - 1
        assert all(p["ops"] > 0 and p["top"] and p["top"][0]["calls"] > 0 for p in profiled)
    if suite == "scaling":  # the parameter sweep: same n, more energy parameters
        sweep = [r for r in records if "hidden" in r]
        assert [(r["hidden"], r["variables"]) for r in sweep] == [(1, 30), (3, 30)]
        assert sweep[1]["parameters"] - sweep[0]["parameters"] == 2 * 18
    if suite == "pose":
        libraries = {r["library"] for r in records}
        assert {r["backward"] for r in timed} == {"implicit"}  # as --backwards asked
        # Theseus is optional: either compared (with the gradient agreement) or said why not.
        assert libraries == {"lightning_energy", "theseus", "agreement"} or any(
            "skipped" in r and "theseus" in r["skipped"] for r in records)


def test_sequence_blocks_time_the_same_matrices(capsys):
    """Faulty variant: the offset columns' yaw rotation transposed (the matrices differ)."""
    main(["bench", "sequence", "--blocks", "--frames", "3", "--batch-size", "1", "--repeats", "1",
          "--format", "json"])
    records = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in records] == ["closed_form", "coloured"]
    for record in records:
        assert record["evaluation_ms"] > 0
        assert record["max_rel_diff"] <= 1e-12


def test_render_rejects_an_empty_run(capsys):
    """Faulty variant: --frames 0 dividing by zero seconds instead of a usage error."""
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "render", "--frames", "0"])
    assert exit_info.value.code == 2
    assert "--frames ≥ 1" in capsys.readouterr().err
