"""Baselines a user runs against a learned energy.

:mod:`~lightning_energy.baselines.tracking` (single and combined trackers, oracles),
:mod:`~lightning_energy.baselines.pose` (DLT triangulation; re-fitted PPCA and the authors'
parameters as :class:`~lightning_energy.callbacks.InitStep` callbacks),
:mod:`~lightning_energy.baselines.ppca` (closed-form PPCA fit) and
:mod:`~lightning_energy.baselines.authors` (the Wibergian-learning checkpoint). A grid search
over an energy's settings on validation data is part of ``lightning-energy cv --grid``.
"""
