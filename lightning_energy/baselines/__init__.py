"""Baselines evaluated in the same harness as the learned energies."""
