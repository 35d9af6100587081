"""Lightning callbacks: solver diagnostics and energy-parameter monitoring, end-of-run reports."""

from lightning_energy.callbacks.diagnostics import EnergyParameterMonitor, SolverDiagnostics
from lightning_energy.callbacks.report import BaselineReport

__all__ = ["BaselineReport", "EnergyParameterMonitor", "SolverDiagnostics"]
