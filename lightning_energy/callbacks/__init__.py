"""Lightning callbacks for learning energies.

Solver diagnostics, energy-parameter monitoring, end-of-run reports, checkpoint choice on
validation, alternating updates, data-dependent starting points and test-time baselines.
Exponential moving averages of the weights need no callback of ours: use Lightning's
``pytorch_lightning.callbacks.EMAWeightAveraging``.
"""

from lightning_energy.callbacks.alternating import AlternatingUpdates
from lightning_energy.callbacks.checkpoint import RunCheckpoint
from lightning_energy.callbacks.diagnostics import EnergyParameterMonitor, SolverDiagnostics
from lightning_energy.callbacks.init_step import InitStep
from lightning_energy.callbacks.report import BaselineReport
from lightning_energy.callbacks.selection import BestOnValidation
from lightning_energy.callbacks.tracker_baselines import TrackerBaselines
from lightning_energy.callbacks.tracker_weights import TrackerWeightsFromAUC

__all__ = [
    "AlternatingUpdates",
    "BaselineReport",
    "BestOnValidation",
    "EnergyParameterMonitor",
    "InitStep",
    "RunCheckpoint",
    "SolverDiagnostics",
    "TrackerBaselines",
    "TrackerWeightsFromAUC",
]
