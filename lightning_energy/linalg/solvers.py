"""Linear-solver objects: how an implicit adjoint solves (H + λI) v = rhs.

An adjoint hands the solver a :class:`Curvature`, which gives the batch of symmetric matrices
H_b in whichever form the solver asks for (dense, as a matrix-vector product, or as bands), and
the solver returns v together with per-batch statistics (damping used, fallbacks, failures).

* :class:`Cholesky` — dense batched Cholesky with the documented fallback
  (:func:`~lightning_energy.linalg.dense.damped_cholesky_solve`); O(B n³), for n up to a few
  hundred.
* :class:`ConjugateGradient` — matrix-free, one batched product H v per iteration; O(B n)
  memory, for n in the thousands.
* :class:`Banded` — for energies whose Hessian is C interleaved symmetric pentadiagonal T × T
  blocks (the tracker-fusion energy); O(B C T).
* :class:`BlockArrow` — for sequence energies whose Hessian is block-tridiagonal over T frames
  with a dense border of shared variables (:mod:`~lightning_energy.linalg.block_arrow`); linear
  in T.

``damping="auto"`` (a per-sample λ that makes H + λI positive definite with a margin relative to
H's spectral radius) is implemented by :class:`Cholesky` (eigenvalues) and
:class:`ConjugateGradient` (power iteration, raised on negative curvature); :class:`Banded`
and :class:`BlockArrow` take a number only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

from lightning_energy.linalg.banded import banded_damped_solve, dense_from_bands
from lightning_energy.linalg.block_arrow import BlockArrowMatrix, block_arrow_damped_solve
from lightning_energy.linalg.cg import CGInfo, conjugate_gradient
from lightning_energy.linalg.dense import damped_cholesky_solve
from lightning_energy.linalg.fallback import LinearSolveInfo


class Curvature(Protocol):
    """A batch of symmetric matrices H_b (B, n, n), produced on demand in the form asked for.

    A curvature need only give the forms its linear solver asks for (:class:`Cholesky`: dense).

    Example:
        >>> import torch
        >>> from lightning_energy.linalg import Cholesky
        >>> class Diagonal:  # H_b = diag(1, 2, 4) for each of 2 samples
        ...     def dense(self):
        ...         return torch.diag(torch.tensor([1.0, 2.0, 4.0])).double().expand(2, 3, 3)
        >>> v, stats = Cholesky().solve(Diagonal(), torch.ones(2, 3, dtype=torch.float64), 0.0)
        >>> v[0]
        tensor([1.0000, 0.5000, 0.2500], dtype=torch.float64)
    """

    def dense(self) -> Tensor:
        """The matrices, shape (B, n, n)."""
        ...

    def matvec(self) -> Callable[[Tensor], Tensor]:
        """The batched product v ↦ H v, (B, n) → (B, n)."""
        ...

    def bands(self) -> Tensor:
        """Bands (B, C, 3, T) of C interleaved pentadiagonal blocks (x laid out as (T, C))."""
        ...

    def block_arrow(self) -> BlockArrowMatrix:
        """Block-tridiagonal frames with a shared border (x laid out as (T·p frames, s shared))."""
        ...


class LinearSolver(ABC):
    """Solves the damped systems (H_b + λ_b I) v_b = rhs_b of a batch.

    Example:
        A solver of one's own, for an :class:`~lightning_energy.ImplicitAdjoint`:

        >>> import lightning_energy as le
        >>> class Jacobi(LinearSolver):  # keeps only the diagonal of H
        ...     supports_auto = False
        ...     def solve(self, curvature, rhs, damping, auto_margin=1e-3):
        ...         return rhs / (curvature.dense().diagonal(dim1=-2, dim2=-1) + damping), {}
        >>> le.ImplicitAdjoint(1e-2, linear_solver=Jacobi())
        ImplicitAdjoint(damping=0.01, hessian='exact', linear_solver=Jacobi())
    """

    supports_auto: bool = True
    """Whether ``damping="auto"`` is available."""

    @abstractmethod
    def solve(self, curvature: Curvature, rhs: Tensor, damping: float | str,
              auto_margin: float = 1e-3) -> tuple[Tensor, dict[str, Tensor]]:
        """Solutions v (B, n) and statistics (``damping`` mean, ``fallbacks``, ``failed``).

        Args:
            curvature: The matrices H.
            rhs: Right-hand sides (B, n).
            damping: λ ≥ 0, or ``"auto"`` (see the module docstring).
            auto_margin: Margin of the ``"auto"`` rule, relative to H's spectral radius.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def solve_stats(info: LinearSolveInfo) -> dict[str, Tensor]:
    """The statistics a linear solver reports: mean damping, fallbacks and failures."""
    return {"damping": info.damping.mean(), "fallbacks": info.retried.sum(),
            "failed": info.failed.sum()}


class RetryingSolver(LinearSolver):
    """Base of the factorising solvers with the fallback of :mod:`~.fallback`.

    Args:
        max_retries: Damping increases tried after the float64 retry.
    """

    def __init__(self, max_retries: int = 8) -> None:
        if max_retries < 0:
            raise ValueError(f"Expected `max_retries` >= 0, got {max_retries}.")
        self.max_retries = max_retries


class Cholesky(RetryingSolver):
    """Dense batched Cholesky of H + λI; failed samples are retried in float64, then damped more.

    Args:
        max_retries: Damping increases tried after the float64 retry.

    Example:
        >>> import torch, lightning_energy as le
        >>> from lightning_energy.linalg import Cholesky
        >>> adjoint = le.ImplicitAdjoint("auto", linear_solver=Cholesky(max_retries=4))
        >>> c = torch.zeros(3, 2, requires_grad=True)
        >>> le.argmin(le.QuadraticEnergy(2), c, solver=le.Newton(dtype="float64"),
        ...           adjoint=adjoint).x.sum().backward()
        >>> c.grad.shape
        torch.Size([3, 2])
    """

    def solve(self, curvature: Curvature, rhs: Tensor, damping: float | str,  # noqa: D102
              auto_margin: float = 1e-3) -> tuple[Tensor, dict[str, Tensor]]:
        hess = curvature.dense()
        lam = auto_damping(hess, auto_margin) if damping == "auto" else float(damping)
        v, info = damped_cholesky_solve(hess, rhs, lam, self.max_retries)
        return v, solve_stats(info)


class ConjugateGradient(LinearSolver):
    """Matrix-free conjugate gradients on batched Hessian-vector products.

    With ``damping="auto"``, λ starts at ``auto_margin`` × a power-iteration estimate of H's
    spectral radius and is raised tenfold (up to 8 times) for samples whose CG meets negative
    curvature; with a fixed λ such samples keep the iterate before it and count as ``failed``.

    Args:
        max_iter: Iteration cap (default n).
        rtol: Relative residual tolerance.

    Example:
        Matrix-free in both directions, with :class:`~lightning_energy.NewtonCG`:

        >>> import torch, lightning_energy as le
        >>> from lightning_energy.linalg import ConjugateGradient
        >>> layer = le.EnergyLayer(le.QuadraticEnergy(10), le.NewtonCG(dtype="float64"),
        ...                        le.ImplicitAdjoint(1e-6, linear_solver=ConjugateGradient()))
        >>> c = torch.zeros(2, 10, requires_grad=True)
        >>> layer(c).x.sum().backward()
        >>> c.grad.shape
        torch.Size([2, 10])
    """

    def __init__(self, max_iter: int | None = None, rtol: float = 1e-10) -> None:
        if max_iter is not None and max_iter < 1:
            raise ValueError(f"Expected `max_iter` >= 1 or None, got {max_iter}.")
        if not rtol > 0:
            raise ValueError(f"Expected `rtol` > 0, got {rtol}.")
        self.max_iter, self.rtol = max_iter, rtol

    def __repr__(self) -> str:
        return f"ConjugateGradient(max_iter={self.max_iter}, rtol={self.rtol})"

    def solve(self, curvature: Curvature, rhs: Tensor, damping: float | str,  # noqa: D102
              auto_margin: float = 1e-3) -> tuple[Tensor, dict[str, Tensor]]:
        hvp = curvature.matvec()
        if damping == "auto":
            lam = auto_margin * spectral_radius(hvp, rhs)
        else:
            lam = torch.full_like(rhs[:, 0], float(damping))
        retries = torch.zeros_like(lam, dtype=torch.bool)

        def solve(lam: Tensor) -> tuple[Tensor, CGInfo]:
            return conjugate_gradient(lambda u: hvp(u) + lam[:, None] * u, rhs, self.max_iter,
                                      self.rtol)

        v, info = solve(lam)
        for _ in range(8):  # tenfold raises of λ where CG met negative curvature
            if damping != "auto" or not bool(info.negative_curvature.any()):
                break
            retries = retries | info.negative_curvature
            increment = torch.finfo(lam.dtype).eps * (1 + lam)  # λ = 0 must grow too
            lam = torch.where(info.negative_curvature, 10 * lam + increment, lam)
            v, info = solve(lam)
        return v, {"damping": lam.mean(), "fallbacks": retries.sum(),
                   "failed": info.negative_curvature.sum(),
                   "cg_iterations": info.iterations.float().mean()}


class Banded(LinearSolver):
    """Solves block-banded systems: C interleaved symmetric pentadiagonal T × T blocks per sample.

    The unknowns are laid out frame-major, x[t·C + c], as in the tracker-fusion energy whose
    ``hessian_bands`` gives the bands. Blocks shorter than ``dense_below`` are solved by dense
    Cholesky, longer ones by LAPACK's banded Cholesky, both with the per-block fallback of
    :class:`Cholesky` (float64, then more damping; a block that never factorises is flagged
    ``failed`` and gets no gradient).

    Args:
        dense_below: Block length below which dense Cholesky is used.

    Example:
        >>> import torch
        >>> from lightning_energy.linalg import Banded
        >>> class Laplacian:  # 1 sample, C = 1 block of T = 4: diagonal 2, off-diagonal −1
        ...     def bands(self):
        ...         return torch.tensor([[2.0] * 4, [-1.0] * 4, [0.0] * 4]).double()[None, None]
        >>> v, stats = Banded().solve(Laplacian(), torch.ones(1, 4, dtype=torch.float64), 0.0)
        >>> v.round(decimals=6)
        tensor([[2., 3., 3., 2.]], dtype=torch.float64)
    """

    supports_auto = False

    def __init__(self, dense_below: int = 256) -> None:
        if dense_below < 0:
            raise ValueError(f"Expected `dense_below` >= 0, got {dense_below}.")
        self.dense_below = dense_below

    def __repr__(self) -> str:
        return f"Banded(dense_below={self.dense_below})"

    def solve(self, curvature: Curvature, rhs: Tensor, damping: float | str,  # noqa: D102
              auto_margin: float = 1e-3) -> tuple[Tensor, dict[str, Tensor]]:
        if damping == "auto":
            raise ValueError("Banded() takes a float `damping`, got 'auto'.")
        bands = curvature.bands()  # (B, C, 3, T)
        b, c, _, t = bands.shape
        flat_rhs = rhs.reshape(b, t, c).permute(0, 2, 1).reshape(b * c, t)
        flat_bands = bands.reshape(b * c, 3, t)
        if t < self.dense_below:
            v, info = damped_cholesky_solve(dense_from_bands(flat_bands), flat_rhs,
                                            float(damping))
        else:
            v, info = banded_damped_solve(flat_bands, flat_rhs, float(damping))
        stats = solve_stats(info)
        return v.reshape(b, c, t).permute(0, 2, 1).reshape(rhs.shape), stats


class BlockArrow(RetryingSolver):
    """Solves block-arrow systems by block-tridiagonal Cholesky and a Schur complement.

    For energies whose Hessian couples each of T frames (p variables each) only with its
    neighbours and with s shared variables, laid out (x_0, …, x_{T−1}, x_shared), as given by
    the energy's ``hessian_block_arrow(x, inputs)``. Cost O(T (p³ + p² s + p s²) + s³) per sample
    where the dense solve costs O((T p + s)³); the fallback of :class:`Cholesky` per sample
    (float64, then more damping; a sample that never factorises is flagged ``failed`` and gets no
    gradient).

    Args:
        max_retries: Damping increases tried after the float64 retry.

    Example:
        >>> import torch, lightning_energy as le
        >>> from lightning_energy.linalg import BlockArrow
        >>> adjoint = le.ImplicitAdjoint(1e-2, linear_solver=BlockArrow())
        >>> adjoint
        ImplicitAdjoint(damping=0.01, hessian='exact', linear_solver=BlockArrow())
    """

    supports_auto = False

    def solve(self, curvature: Curvature, rhs: Tensor, damping: float | str,  # noqa: D102
              auto_margin: float = 1e-3) -> tuple[Tensor, dict[str, Tensor]]:
        if damping == "auto":
            raise ValueError("BlockArrow() takes a float `damping`, got 'auto'.")
        v, info = block_arrow_damped_solve(curvature.block_arrow(), rhs, float(damping),
                                           self.max_retries)
        return v, solve_stats(info)


def auto_damping(hess: Tensor, margin: float) -> Tensor:
    """Per-sample λ (B,) = max(0, −μ_min(H)) + ``margin`` · max|μ(H)| for H (B, n, n)."""
    eig = torch.linalg.eigvalsh(hess.double())
    radius = eig.abs().amax(-1)
    lam = torch.clamp(-eig[..., 0], min=0) + margin * radius
    return torch.clamp(lam, min=torch.finfo(hess.dtype).tiny).to(hess.dtype)


def spectral_radius(hvp: Callable[[Tensor], Tensor], like: Tensor, iterations: int = 20) -> Tensor:
    """Power-iteration estimate of max |eigenvalue| of each H_b (B,), from products ``hvp``."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    v = torch.randn(like.shape, generator=gen, dtype=like.dtype).to(like.device)
    radius = torch.zeros_like(like[:, 0])
    for _ in range(iterations):
        v = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(1e-300)
        hv = hvp(v)
        radius = torch.linalg.vector_norm(hv, dim=-1)
        v = hv
    return radius
