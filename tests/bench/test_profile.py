"""``bench.profile`` counts top-level operators once (not the kernels nested inside them)."""

import torch

from lightning_energy.bench.profile import format_profile, profile_step

CPU = torch.device("cpu")


def _chain(links: int):
    x = torch.randn(64, 8, 8, dtype=torch.float64, requires_grad=True)

    def loss() -> torch.Tensor:
        y = x
        for _ in range(links):
            y = torch.einsum("bij,bjk->bik", y, x) * 0.1
        return y.sum()

    return loss


def test_operator_counts_grow_by_the_same_amount_per_link():
    """Faulty variants caught: nested operators counted (einsum's permutes and bmm would add
    more per link than the top-level calls), or counts that do not follow the work."""
    counts = [profile_step(_chain(links), CPU)["ops"] for links in (2, 4, 6)]
    per_two_links = counts[1] - counts[0]
    assert per_two_links > 0
    assert counts[2] - counts[1] == per_two_links
    # Two links add two einsums and two multiplications forward and their backward passes:
    # 38 top-level operators (counted with the nested ones, 118).
    assert per_two_links <= 50, counts


def test_profile_names_the_costliest_operators_and_formats():
    record = profile_step(_chain(3), CPU, top=3)
    assert "kernels" not in record  # CUDA only
    assert 1 <= len(record["top"]) <= 3
    assert all(t["calls"] >= 1 and t["ms"] > 0 for t in record["top"])
    assert [t["ms"] for t in record["top"]] == sorted((t["ms"] for t in record["top"]),
                                                      reverse=True)
    text = format_profile("row", record)
    assert text.startswith(f"row: {record['ops']} ops")
    assert text.count("\n") == len(record["top"])
