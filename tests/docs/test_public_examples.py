"""Every public class and function has a docstring example, and every example runs.

Public names: `lightning_energy.__all__` and the `__all__` of the subpackages the API reference
documents; a module without `__all__` (`le.robust`, `le.testing`) exports what it defines
without a leading underscore.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import io
from types import ModuleType

import pytest

import lightning_energy as le

SUBPACKAGES = ("callbacks", "datamodules", "linalg", "metrics", "networks", "tasks")

# Modules whose doctests already run in their own folder's tests; running them again here would
# only double the time.
DOCTESTED_ELSEWHERE = {
    # tests/metrics/test_metrics_examples.py
    "lightning_energy.metrics.functional", "lightning_energy.metrics.pose",
    "lightning_energy.metrics.tracking", "lightning_energy.metrics.convergence",
    "lightning_energy.metrics.keypoints", "lightning_energy.metrics._keypoints",
    # tests/networks/test_heads.py and test_hourglass.py
    "lightning_energy.networks.heads", "lightning_energy.networks.heatmaps",
    "lightning_energy.networks.hourglass",
}


def exported(module: ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [name for name, obj in vars(module).items() if not name.startswith("_")
            and getattr(obj, "__module__", None) == module.__name__]


def public_objects() -> dict[str, object]:
    """Public classes and functions by the first public path that names them."""
    found: dict[str, object] = {}
    seen: set[int] = set()
    modules = [("lightning_energy", le)]
    modules += [(f"lightning_energy.{n}", importlib.import_module(f"lightning_energy.{n}"))
                for n in SUBPACKAGES]
    while modules:
        path, module = modules.pop(0)
        for name in exported(module):
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                modules.append((f"{path}.{name}", obj))
            elif (inspect.isclass(obj) or inspect.isfunction(obj)) and id(obj) not in seen:
                seen.add(id(obj))
                found[f"{path}.{name}"] = obj
    return found


PUBLIC = public_objects()


def doctests(name: str, obj: object) -> list[doctest.DocTest]:
    """The examples of `obj`'s docstring and its own methods', in its module's namespace."""
    module = inspect.getmodule(obj)
    assert module is not None
    tests = doctest.DocTestFinder().find(obj, name, module=module, globs=vars(module))
    return [test for test in tests if test.examples]


TO_RUN = sorted(name for name, obj in PUBLIC.items()
                if getattr(obj, "__module__", "") not in DOCTESTED_ELSEWHERE
                and doctests(name, obj))


def test_public_surface_is_collected() -> None:
    """Catches: the collection silently finding nothing (a renamed `__all__`)."""
    for name in ("lightning_energy.EnergyLayer", "lightning_energy.tasks.RobustMeanTask",
                 "lightning_energy.robust.Huber", "lightning_energy.testing.check_energy",
                 "lightning_energy.callbacks.BestOnValidation"):
        assert name in PUBLIC
    assert len(TO_RUN) > 20


def test_every_public_name_has_an_example() -> None:
    """Catches: a new public class or function whose docstring shows no `>>>` example."""
    missing = sorted(name for name, obj in PUBLIC.items()
                     if ">>>" not in (inspect.getdoc(obj) or ""))
    assert not missing, f"add an `Example:` section to the docstrings of {missing}"


@pytest.mark.parametrize("name", TO_RUN)
def test_docstring_examples_run(name: str) -> None:
    """Catches: an example that no longer runs or no longer prints what it shows."""
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    for test in doctests(name, PUBLIC[name]):
        runner.run(test, out=report.write)
    assert runner.failures == 0, report.getvalue()
