"""Experiment scripts (cross-validation studies) behind the result tables in docs/results."""
