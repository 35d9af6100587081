"""The assumption study of the trust-region implicit gradient (issue #19), parts 1–3 on toys.

``python -m studies.assumptions --out docs/study`` regenerates every number (``numbers.json``),
figure and the page ``docs/study/index.md``. One concept per module: :mod:`.problems` (the two
toy energies and their data), :mod:`.convexity` (the Hessian at x*), :mod:`.fidelity` (damped
against finite-difference gradients), :mod:`.drift` (linear prediction of x* against re-solves,
and truncated inner solves), :mod:`.figures` and :mod:`.page`.
"""
