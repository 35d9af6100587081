"""Block-arrow systems: T per-frame blocks coupled to their neighbours and to shared variables.

The unknowns of one problem are laid out frame-major, then shared: x = (x_0, …, x_{T−1}, x_s)
with x_t of size p and x_s of size s, n = T·p + s. The matrix is block-tridiagonal in the
frames with a dense border for the shared variables (the structure of bundle adjustment, and of
any sequence energy whose terms couple a frame with its neighbour and with per-sequence
variables)::

    ⎡ D_0  L_0ᵀ            W_0 ⎤
    ⎢ L_0  D_1  L_1ᵀ       W_1 ⎥
    ⎢      L_1  D_2   ⋱    W_2 ⎥
    ⎢            ⋱    ⋱     ⋮  ⎥
    ⎣ W_0ᵀ W_1ᵀ  W_2ᵀ  …   S   ⎦

(A + λI) z = rhs is solved by a block-tridiagonal Cholesky factorisation of the frame part and a
Schur complement on the shared variables: O(T (p³ + p² s + p s²) + s³) time and O(T p (p + s))
memory per problem, linear in T, where a dense factorisation costs O((T p + s)³).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from lightning_energy.linalg.fallback import LinearSolveInfo, solve_with_fallback


@dataclass
class BlockArrowMatrix:
    """A batch of symmetric block-arrow matrices (see the module docstring).

    Attributes:
        diagonal: Frame blocks D_t, shape (B, T, p, p), symmetric.
        lower: Blocks L_t = A[t + 1, t] below the diagonal, shape (B, T − 1, p, p).
        border: Blocks W_t = A[t, shared], shape (B, T, p, s) (s may be 0).
        corner: The shared block S, shape (B, s, s), symmetric.

    Example:
        >>> import torch
        >>> eye = torch.eye(2).expand(1, 3, 2, 2)
        >>> a = BlockArrowMatrix(2 * eye, torch.zeros(1, 2, 2, 2), torch.ones(1, 3, 2, 1),
        ...                      torch.full((1, 1, 1), 10.0))
        >>> a.dense().shape, a.size
        (torch.Size([1, 7, 7]), 7)
    """

    diagonal: Tensor
    lower: Tensor
    border: Tensor
    corner: Tensor

    def __post_init__(self) -> None:
        if self.diagonal.ndim != 4 or self.corner.ndim != 3:
            raise ValueError(f"BlockArrowMatrix: expected `diagonal` (B, T, p, p) and `corner` "
                             f"(B, s, s), got {tuple(self.diagonal.shape)} and "
                             f"{tuple(self.corner.shape)}.")
        b, t, p, _ = self.diagonal.shape
        s = self.corner.shape[-1]
        expected = {"diagonal": (b, t, p, p), "lower": (b, max(t - 1, 0), p, p),
                    "border": (b, t, p, s), "corner": (b, s, s)}
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"BlockArrowMatrix: expected `{name}` of shape {shape} "
                                 f"(B, T, p, s = {b}, {t}, {p}, {s}), got {got}.")

    @classmethod
    def from_dense(cls, matrix: Tensor, num_frames: int, block_size: int) -> BlockArrowMatrix:
        """The block-arrow part of dense matrices (B, n, n), n = T·p + s.

        Entries outside the pattern are dropped. For tests, and for energies small enough to
        form their Hessian densely.
        """
        b, n, t, p = matrix.shape[0], matrix.shape[-1], num_frames, block_size
        if matrix.ndim != 3 or matrix.shape[1] != n or n < t * p:
            raise ValueError(f"Expected `matrix` of shape (B, n, n) with n >= T·p = {t * p}, "
                             f"got {tuple(matrix.shape)}.")
        frames = matrix[:, : t * p, : t * p].reshape(b, t, p, t, p)
        idx = torch.arange(t, device=matrix.device)
        return cls(frames[:, idx, :, idx, :].transpose(0, 1),
                   frames[:, idx[1:], :, idx[:-1], :].transpose(0, 1),
                   matrix[:, : t * p, t * p:].reshape(b, t, p, n - t * p),
                   matrix[:, t * p:, t * p:])

    def pack(self) -> Tensor:
        """All blocks flattened into one (B, K) tensor (for a solver's per-sample state)."""
        parts = (self.diagonal, self.lower, self.border, self.corner)
        return torch.cat([part.flatten(1) for part in parts], 1)

    @classmethod
    def unpack(cls, packed: Tensor, num_frames: int, block_size: int,
               num_shared: int) -> BlockArrowMatrix:
        """The inverse of :meth:`pack` for (B, K) ``packed`` and the given T, p, s."""
        b, t, p, s = packed.shape[0], num_frames, block_size, num_shared
        shapes = ((t, p, p), (max(t - 1, 0), p, p), (t, p, s), (s, s))
        sizes = [math.prod(shape) for shape in shapes]
        if packed.ndim != 2 or packed.shape[1] != sum(sizes):
            raise ValueError(f"Expected `packed` of shape (B, {sum(sizes)}) for T, p, s = {t}, "
                             f"{p}, {s}, got {tuple(packed.shape)}.")
        parts = torch.split(packed, sizes, dim=1)
        return cls(*(part.reshape(b, *shape) for part, shape in zip(parts, shapes, strict=True)))

    @property
    def num_frames(self) -> int:
        """The number of frames T."""
        return self.diagonal.shape[1]

    @property
    def block_size(self) -> int:
        """The variables of one frame, p."""
        return self.diagonal.shape[-1]

    @property
    def num_shared(self) -> int:
        """The number of shared variables, s."""
        return self.corner.shape[-1]

    @property
    def size(self) -> int:
        """The number of variables, n = T·p + s."""
        return self.num_frames * self.block_size + self.num_shared

    def dense(self) -> Tensor:
        """The matrices, (B, n, n) (for tests and small problems)."""
        b, t, p, s = (self.diagonal.shape[0], self.num_frames, self.block_size, self.num_shared)
        frames = torch.zeros(b, t, p, t, p, dtype=self.diagonal.dtype, device=self.diagonal.device)
        idx = torch.arange(t, device=frames.device)
        frames[:, idx, :, idx, :] = self.diagonal.transpose(0, 1)
        frames[:, idx[1:], :, idx[:-1], :] = self.lower.transpose(0, 1)
        frames[:, idx[:-1], :, idx[1:], :] = self.lower.transpose(-1, -2).transpose(0, 1)
        border = self.border.reshape(b, t * p, s)
        top = torch.cat([frames.reshape(b, t * p, t * p), border], -1)
        bottom = torch.cat([border.transpose(-1, -2), self.corner], -1)
        return torch.cat([top, bottom], -2)

    def matvec(self, z: Tensor) -> Tensor:
        """Products A z for z (B, n), without forming A."""
        b, t, p = z.shape[0], self.num_frames, self.block_size
        zf, zs = z[:, : t * p].reshape(b, t, p), z[:, t * p:]
        out = torch.einsum("btij,btj->bti", self.diagonal, zf)
        out = out + torch.einsum("btpq,bq->btp", self.border, zs)
        if t > 1:
            below = torch.einsum("btij,btj->bti", self.lower, zf[:, :-1])
            above = torch.einsum("btji,btj->bti", self.lower, zf[:, 1:])
            out = out + torch.cat([torch.zeros_like(zf[:, :1]), below], 1)
            out = out + torch.cat([above, torch.zeros_like(zf[:, :1])], 1)
        shared = torch.einsum("btpq,btp->bq", self.border, zf) + torch.einsum(
            "bij,bj->bi", self.corner, zs)
        return torch.cat([out.reshape(b, t * p), shared], -1)

    def select(self, index: Tensor) -> BlockArrowMatrix:
        """The samples ``index`` (K,), in float64 (the fallback's retry)."""
        return BlockArrowMatrix(self.diagonal[index].double(), self.lower[index].double(),
                                self.border[index].double(), self.corner[index].double())

    def diagonal_scale(self) -> Tensor:
        """Mean |diagonal entry| of each matrix (B,)."""
        frames = self.diagonal.diagonal(dim1=-2, dim2=-1).abs().sum((-1, -2))
        shared = self.corner.diagonal(dim1=-2, dim2=-1).abs().sum(-1)
        return (frames + shared) / self.size

    def try_solve(self, rhs: Tensor, damping: Tensor) -> tuple[Tensor, Tensor]:
        """Solve (A + λI) z = rhs (B, n) for λ (B,); z and a success mask (B,).

        Where a factorisation fails the sample's solution is zero and its flag False.
        """
        b, t, p, s = rhs.shape[0], self.num_frames, self.block_size, self.num_shared
        lam = damping.to(rhs.dtype)
        rf, rs = rhs[:, : t * p].reshape(b, t, p), rhs[:, t * p:]
        # The frame part is solved for [rhs_f | W] at once: the Schur complement needs A_ff⁻¹W.
        many = torch.cat([rf.unsqueeze(-1), self.border.to(rhs.dtype)], -1)  # (B, T, p, 1 + s)
        solved, ok = _tridiagonal_solve(self.diagonal.to(rhs.dtype), self.lower.to(rhs.dtype),
                                        many, lam)
        u = solved[..., 0]
        if s == 0:
            z = u.reshape(b, t * p)
            return torch.where(ok[:, None], z, torch.zeros_like(z)), ok
        v, border = solved[..., 1:], self.border.to(rhs.dtype)
        eye = torch.eye(s, dtype=rhs.dtype, device=rhs.device)
        schur = (self.corner.to(rhs.dtype) + lam[:, None, None] * eye
                 - torch.einsum("btps,btpq->bsq", border, v))
        schur_rhs = rs - torch.einsum("btps,btp->bs", border, u)
        factor, info = torch.linalg.cholesky_ex(schur)
        ok = ok & (info == 0)
        factor = torch.where(ok[:, None, None], factor, eye)
        zs = torch.cholesky_solve(schur_rhs.unsqueeze(-1), factor).squeeze(-1)
        zf = u - torch.einsum("btps,bs->btp", v, zs)
        z = torch.cat([zf.reshape(b, t * p), zs], -1)
        return torch.where(ok[:, None], z, torch.zeros_like(z)), ok


def _tridiagonal_solve(diagonal: Tensor, lower: Tensor, rhs: Tensor,
                       damping: Tensor) -> tuple[Tensor, Tensor]:
    """Solve the block-tridiagonal (D + λI, L) systems for rhs (B, T, p, k) by block Cholesky.

    The factor has diagonal blocks C_t (lower triangular) and sub-diagonal blocks M_t with
    M_t C_{t−1}ᵀ = L_{t−1} and C_t C_tᵀ = D_t + λI − M_t M_tᵀ; forward then backward
    substitution. A failed block factorisation flags its sample (and is replaced by I so that
    the batch carries on without NaNs).
    """
    b, t, p, _ = diagonal.shape
    eye = torch.eye(p, dtype=diagonal.dtype, device=diagonal.device)
    ok = torch.ones(b, dtype=torch.bool, device=diagonal.device)
    factors: list[Tensor] = []
    couplings: list[Tensor] = []
    forward: list[Tensor] = []
    for i in range(t):
        block = diagonal[:, i] + damping[:, None, None] * eye
        g = rhs[:, i]
        if i > 0:
            m = torch.linalg.solve_triangular(factors[-1], lower[:, i - 1].transpose(-1, -2),
                                              upper=False).transpose(-1, -2)
            block = block - m @ m.transpose(-1, -2)
            g = g - m @ forward[-1]
            couplings.append(m)
        factor, info = torch.linalg.cholesky_ex(block)
        ok = ok & (info == 0)
        factor = torch.where((info == 0)[:, None, None], factor, eye)
        factors.append(factor)
        forward.append(torch.linalg.solve_triangular(factor, g, upper=False))
    out: list[Tensor] = [forward[-1]] * t
    for i in reversed(range(t)):
        g = forward[i]
        if i < t - 1:
            g = g - couplings[i].transpose(-1, -2) @ out[i + 1]
        out[i] = torch.linalg.solve_triangular(factors[i].transpose(-1, -2), g, upper=True)
    return torch.stack(out, 1), ok


def block_arrow_damped_solve(
    matrix: BlockArrowMatrix, rhs: Tensor, damping: Tensor | float, max_retries: int = 8
) -> tuple[Tensor, LinearSolveInfo]:
    """(A + λI) z = rhs for block-arrow A, with the fallback of :mod:`.fallback`.

    Args:
        matrix: The matrices A (B of them).
        rhs: Right-hand sides (B, n), n = T·p + s.
        damping: λ ≥ 0, a float or shape (B,).
        max_retries: Damping increases tried after the float64 retry.

    Returns:
        The solutions (B, n) and a :class:`~lightning_energy.linalg.LinearSolveInfo`.

    Example:
        >>> import torch
        >>> eye = torch.eye(2, dtype=torch.float64).expand(1, 3, 2, 2)
        >>> a = BlockArrowMatrix(2 * eye, torch.zeros(1, 2, 2, 2, dtype=torch.float64),
        ...                      torch.zeros(1, 3, 2, 1, dtype=torch.float64),
        ...                      torch.ones(1, 1, 1, dtype=torch.float64))
        >>> z, info = block_arrow_damped_solve(a, torch.ones(1, 7, dtype=torch.float64), 0.0)
        >>> z
        tensor([[0.5000, 0.5000, 0.5000, 0.5000, 0.5000, 0.5000, 1.0000]], dtype=torch.float64)
    """
    if rhs.ndim != 2 or rhs.shape != (matrix.diagonal.shape[0], matrix.size):
        raise ValueError(f"Expected `rhs` of shape (B, n) = ({matrix.diagonal.shape[0]}, "
                         f"{matrix.size}), got {tuple(rhs.shape)}.")
    return solve_with_fallback(matrix, rhs, damping, max_retries)
