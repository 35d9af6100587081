"""Experiment scripts (cross-validation studies) that reproduce the result tables in docs/results."""
