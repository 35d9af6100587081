"""Least-squares energies over a sequence of frames with shared variables (block-arrow Hessian).

One problem is a window of T frames: x = (x_0, …, x_{T−1}, x_s), p variables per frame and s
shared by every frame (a per-sequence body shape, an offset, a camera). The residuals come in
three kinds, each depending on few variables:

* frame residuals r_t(x_t, x_s), shape (B, T, m_f);
* pair residuals q_t(x_t, x_{t+1}, x_s) between neighbours (smoothness), shape (B, T − 1, m_q);
* shared residuals u(x_s) (a prior on the shared variables), shape (B, m_u).

So the Gauss–Newton matrix and the Hessian are block-arrow shaped
(:class:`~lightning_energy.linalg.BlockArrowMatrix`): solvers and the implicit adjoint solve
with them in O(T) by a Schur complement (:class:`~lightning_energy.BlockArrowLevenbergMarquardt`,
:class:`~lightning_energy.linalg.BlockArrow`). Their blocks are computed here by forward-mode
products with coloured tangents: frames of one colour never share a residual (two colours for
the Jacobian, three for the Hessian, whose rows couple a frame with both neighbours), so the
cost is 2p + s Jacobian-vector products, or 3p + s Hessian-vector products, whatever T.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch
from torch import Tensor

from lightning_energy.energies.base import LeastSquaresEnergy
from lightning_energy.errors import ShapeError
from lightning_energy.linalg.block_arrow import BlockArrowMatrix


class SequenceLeastSquaresEnergy(LeastSquaresEnergy):
    """``E = ½ Σ ρ(r²)`` over frame, pair and shared residuals of a window of T frames.

    Subclasses set :attr:`frame_size` (p) and :attr:`shared_size` (s) and implement
    :meth:`frame_residuals`, and optionally :meth:`pair_residuals` and :meth:`shared_residuals`.
    ``x`` is flat (B, T·p + s), frames first; T follows from its length. The robust kernel (or an
    override of ``rho``/``weights``) sees the residuals concatenated as (frames (B, T·m_f), pairs
    (B, (T − 1)·m_q), shared (B, m_u)).

    Example:
        >>> import torch
        >>> class Smooth(SequenceLeastSquaresEnergy):
        ...     frame_size, shared_size = 1, 1
        ...     def frame_residuals(self, frames, shared, inputs):  # data + a shared offset
        ...         return frames - inputs.unsqueeze(-1) - shared.unsqueeze(1)
        ...     def pair_residuals(self, frames, shared, inputs):
        ...         return frames[:, 1:] - frames[:, :-1]
        ...     def shared_residuals(self, shared, inputs):
        ...         return shared
        >>> energy, x = Smooth(), torch.zeros(2, 5 * 1 + 1, dtype=torch.float64)
        >>> energy.hessian_block_arrow(x, torch.ones(2, 5, dtype=torch.float64)).dense().shape
        torch.Size([2, 6, 6])
    """

    frame_size: int
    """Variables per frame, p."""
    shared_size: int = 0
    """Variables shared by the frames of a window, s."""

    @abstractmethod
    def frame_residuals(self, frames: Tensor, shared: Tensor, inputs: Any) -> Tensor:
        """Residuals of each frame (B, T, m_f): row t may depend on ``frames[:, t]`` and ``shared``.

        Args:
            frames: Per-frame variables (B, T, p).
            shared: Shared variables (B, s).
            inputs: The window's data.
        """

    def pair_residuals(self, frames: Tensor, shared: Tensor, inputs: Any) -> Tensor:
        """Residuals between neighbours (B, T − 1, m_q): row t on frames t, t + 1 and ``shared``."""
        return frames.new_zeros(frames.shape[0], frames.shape[1] - 1, 0)

    def shared_residuals(self, shared: Tensor, inputs: Any) -> Tensor:
        """Residuals of the shared variables alone (B, m_u)."""
        return shared.new_zeros(shared.shape[0], 0)

    def num_frames(self, x: Tensor) -> int:
        """T of flat solutions ``x`` (B, T·p + s); raises if the length does not fit."""
        frames, rest = divmod(x.shape[-1] - self.shared_size, self.frame_size)
        if rest or frames < 1:
            raise ValueError(f"Expected `x` of shape (B, T·{self.frame_size} + {self.shared_size})"
                             f" with T >= 1, got {tuple(x.shape)}.")
        return frames

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Frames (B, T, p) and shared variables (B, s) of flat ``x`` (B, T·p + s)."""
        x = x.reshape(x.shape[0], -1)
        t, p = self.num_frames(x), self.frame_size
        return x[:, : t * p].reshape(x.shape[0], t, p), x[:, t * p:]

    def _parts(self, x: Tensor, inputs: Any) -> tuple[Tensor, Tensor, Tensor]:
        frames, shared = self.split(x)
        b, t = frames.shape[:2]
        parts = (self.frame_residuals(frames, shared, inputs),
                 self.pair_residuals(frames, shared, inputs), self.shared_residuals(shared, inputs))
        for name, part, lead in zip(("frame_residuals", "pair_residuals", "shared_residuals"),
                                    parts, ((b, t), (b, t - 1), (b,)), strict=True):
            if part.ndim != len(lead) + 1 or tuple(part.shape[:-1]) != lead:
                expected = ", ".join(str(d) for d in lead)
                raise ShapeError(f"Expected {type(self).__name__}.{name} to return shape "
                                 f"({expected}, m), got {tuple(part.shape)}.")
        return parts

    def residuals(self, x: Tensor, inputs: Any) -> Tensor:
        """All residuals (B, T·m_f + (T − 1)·m_q + m_u), in the order of the class docstring."""
        return torch.cat([part.flatten(1) for part in self._parts(x, inputs)], 1)

    def _tangents(self, x: Tensor, colours: int) -> Tensor:
        """Tangents (colours·p + s, B, n): e_k on the frames of one colour, then each shared e_j.

        A frame's colour is t mod ``colours``.
        """
        t, p, s = self.num_frames(x), self.frame_size, self.shared_size
        frame = torch.arange(t, device=x.device) % colours
        eye = torch.eye(p, dtype=x.dtype, device=x.device)
        coloured = (frame[None, :, None] == torch.arange(colours, device=x.device)[:, None, None])
        frames = coloured.to(x.dtype)[:, None, :, None, :] * eye[None, :, None, :, None]
        frames = frames.reshape(colours * p, t * p, 1)[..., 0]  # (colours·p, T·p)
        tangents = torch.zeros(colours * p + s, t * p + s, dtype=x.dtype, device=x.device)
        tangents[: colours * p, : t * p] = frames
        tangents[colours * p:, t * p:] = torch.eye(s, dtype=x.dtype, device=x.device)
        return tangents[:, None].expand(-1, x.shape[0], -1)

    def _columns(self, x: Tensor, inputs: Any) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """Residual parts (r_f, r_q, r_u) and their products with the 2p + s coloured tangents.

        The products are stacked as (2p + s, B, …) per residual kind.
        """
        def parts(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            return self._parts(z, inputs)

        def column(tangent: Tensor) -> tuple[Tensor, ...]:
            return torch.func.jvp(parts, (x,), (tangent,))[1]

        return parts(x), torch.func.vmap(column)(self._tangents(x, 2))

    def _blocks(self, d_f: Tensor, d_q: Tensor, d_u: Tensor) -> tuple[Tensor, ...]:
        """Jacobian blocks from coloured columns (see :meth:`jacobian_blocks`)."""
        p, t = self.frame_size, d_f.shape[2]
        j_f = (d_f[:p] + d_f[p : 2 * p]).permute(1, 2, 3, 0)
        even = (torch.arange(t - 1, device=d_f.device) % 2 == 0)[None, :, None, None]
        one, other = d_q[:p].permute(1, 2, 3, 0), d_q[p : 2 * p].permute(1, 2, 3, 0)
        first, second = torch.where(even, one, other), torch.where(even, other, one)
        return (j_f, d_f[2 * p:].permute(1, 2, 3, 0), first, second,
                d_q[2 * p:].permute(1, 2, 3, 0), d_u[2 * p:].permute(1, 2, 0))

    def jacobian_blocks(
        self, x: Tensor, inputs: Any
    ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """Residuals and their Jacobian blocks at flat ``x`` (B, n).

        By 2p + s coloured Jacobian-vector products; a subclass may override it with a closed
        form (checked against this one with ``closed_form_jacobian = False``).

        Returns:
            ``(r_f, r_q, r_u)`` as in :meth:`residuals`' parts, and ``(J_f (B, T, m_f, p),
            J_fs (B, T, m_f, s), J_a (B, T−1, m_q, p), J_b (B, T−1, m_q, p),
            J_qs (B, T−1, m_q, s), J_u (B, m_u, s))`` with J_a, J_b the pair rows' derivatives
            in their first and second frame.
        """
        residuals, columns = self._columns(x, inputs)
        return residuals, self._blocks(*columns)

    def _jacobian_blocks(self, x: Tensor, inputs: Any
                         ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        if self.closed_form_jacobian:
            return self.jacobian_blocks(x, inputs)
        return SequenceLeastSquaresEnergy.jacobian_blocks(self, x, inputs)

    def gauss_newton_block_arrow(
        self, x: Tensor, inputs: Any, kernel_curvature: bool = False
    ) -> tuple[Tensor, Tensor, BlockArrowMatrix]:
        """Energies (B,), gradients (B, n) and Gauss–Newton matrices JᵀMJ at flat ``x``.

        M = W = ρ'(r²), the kernel's IRLS weights (as
        :meth:`~lightning_energy.solvers.problem.Problem.gauss_newton`), or with
        ``kernel_curvature`` the full second derivative of ½Σρ(r²) in r: the robust kernels'
        curvature kept (ρ' + 2r²ρ'' per residual, coupled within a kernel's group), only the
        residuals' own second derivatives dropped. That matrix may be indefinite where a kernel
        redescends; it is much nearer the exact Hessian where residuals sit in a kernel's tail.
        ``rho`` may couple residuals only within one frame's rows, one pair's or the shared
        rows (else JᵀMJ is not block-arrow).
        """
        (r_f, r_q, r_u), jac = self._jacobian_blocks(x, inputs)
        shapes = [part.shape for part in (r_f, r_q, r_u)]
        sizes = [r_f[0].numel(), r_q[0].numel(), r_u[0].numel()]
        r = torch.cat([part.flatten(1) for part in (r_f, r_q, r_u)], 1)
        value = 0.5 * self.rho(r**2).sum(-1)

        g_f, g_q, g_u = (g.reshape(shape) for g, shape in
                         zip(torch.split(self.weights(r**2) * r, sizes, 1), shapes, strict=True))
        if kernel_curvature:
            weighted = _curvature_times(self.curvature_products, r, jac, shapes)
        else:
            w_f, w_q, w_u = (w.reshape(shape) for w, shape in
                             zip(torch.split(self.weights(r**2), sizes, 1), shapes, strict=True))
            j_f, j_fs, j_a, j_b, j_qs, j_u = jac
            weighted = (w_f[..., None] * j_f, w_f[..., None] * j_fs, w_q[..., None] * j_a,
                        w_q[..., None] * j_b, w_q[..., None] * j_qs, w_u[..., None] * j_u)
        return value, *_assemble(g_f, g_q, g_u, jac, weighted)

    def curvature_products(self, r: Tensor, tangents: Tensor) -> Tensor:
        """M v for each tangent v (k, B, m), M = ∂(ρ'(r²) r)/∂r at residuals ``r`` (B, m).

        The second derivative of ½Σρ(r²) in the residuals, by forward-mode products; a
        subclass that knows its kernels' groups may override it with the closed form.
        """
        def slope(rr: Tensor) -> Tensor:  # ∂(½Σρ(r²))/∂r = ρ'(r²) r
            return self.weights(rr**2) * rr

        return torch.func.vmap(lambda c: torch.func.jvp(slope, (r,), (c,))[1])(tangents)

    def hessian_block_arrow(self, x: Tensor, inputs: Any) -> BlockArrowMatrix:
        """The exact Hessian ∇²ₓE at flat ``x`` (B, n) as a block-arrow matrix.

        3p + s Hessian-vector products (forward over reverse, vmapped over the coloured
        tangents: on CPU 9× faster here than one reverse-over-reverse pass per tangent).
        """
        t, p = self.num_frames(x), self.frame_size
        x = x.reshape(x.shape[0], -1)

        def gradient(z: Tensor) -> Tensor:
            return torch.func.grad(lambda y: self.forward(y, inputs).sum())(z)

        def column(tangent: Tensor) -> Tensor:
            return torch.func.jvp(gradient, (x,), (tangent,))[1]

        cols = torch.func.vmap(column)(self._tangents(x, 3))  # (3p + s, B, n)
        b = x.shape[0]
        by_colour = cols[: 3 * p, :, : t * p].reshape(3, p, b, t, p)  # (colour, k, B, row t, i)
        colour = torch.arange(t, device=x.device) % 3
        # Row t, colour of t: its own block D_t; colour of t − 1: the block L_{t−1} = A[t, t−1].
        frames = torch.arange(t, device=x.device)
        diagonal = by_colour[colour, :, :, frames].permute(2, 0, 3, 1)  # (B, T, i, k)
        below = by_colour[colour[:-1], :, :, frames[1:]].permute(2, 0, 3, 1)
        shared_cols = cols[3 * p:]  # (s, B, n)
        border = shared_cols[:, :, : t * p].reshape(-1, b, t, p).permute(1, 2, 3, 0)
        corner = shared_cols[:, :, t * p:].permute(1, 2, 0)
        diagonal = 0.5 * (diagonal + diagonal.transpose(-1, -2))
        return BlockArrowMatrix(diagonal, below, border, 0.5 * (corner + corner.transpose(-1, -2)))


def _curvature_times(products: Any, r: Tensor, jac: tuple[Tensor, ...],
                     shapes: list[torch.Size]) -> tuple[Tensor, ...]:
    """The blocks of MJ by 2p + s products with M (``products(r, tangents)``).

    M couples rows only within a frame, a pair or the shared rows, so one product serves the
    frame rows of J_f and the pair rows of J_a together, another J_b, and one per shared
    variable J_fs, J_qs and J_u.
    """
    j_f, j_fs, j_a, j_b, j_qs, j_u = jac
    p = j_f.shape[-1]

    def rows(block: Tensor) -> Tensor:  # (B, …, m, k) → (k, B, rows)
        return block.movedim(-1, 0).flatten(2)

    def zeros(shape: torch.Size, k: int) -> Tensor:
        return r.new_zeros(k, shape[0], shape[1:].numel())

    f, q, u = shapes
    tangents = torch.cat([
        torch.cat([rows(j_f), rows(j_a), zeros(u, p)], 2),
        torch.cat([zeros(f, p), rows(j_b), zeros(u, p)], 2),
        torch.cat([rows(j_fs), rows(j_qs), rows(j_u)], 2),
    ])  # fmt: skip
    times = products(r, tangents)
    frame, pair, shared = torch.split(times, [f[1:].numel(), q[1:].numel(), u[1:].numel()], 2)

    def block(part: Tensor, shape: torch.Size) -> Tensor:  # (k, B, rows) → (B, …, m, k)
        return part.reshape(part.shape[0], *shape).movedim(0, -1)

    return (block(frame[:p], f), block(frame[2 * p:], f), block(pair[:p], q),
            block(pair[p : 2 * p], q), block(pair[2 * p:], q), block(shared[2 * p:], u))


def _assemble(g_f: Tensor, g_q: Tensor, g_u: Tensor, jac: tuple[Tensor, ...],
              weighted: tuple[Tensor, ...]) -> tuple[Tensor, BlockArrowMatrix]:
    """Gradient Jᵀg (B, n) and JᵀMJ (block-arrow) from the blocks of J and of MJ.

    ``g_*`` are ∂(½Σρ)/∂r of each residual kind; ``weighted`` the blocks of MJ.
    """
    j_f, j_fs, j_a, j_b, j_qs, j_u = jac
    m_f, m_fs, m_a, m_b, m_qs, m_u = weighted
    grad_frames = torch.einsum("btmp,btm->btp", j_f, g_f)
    pad = torch.zeros_like(grad_frames[:, :1])
    grad_frames = grad_frames + torch.cat([torch.einsum("btmp,btm->btp", j_a, g_q), pad], 1)
    grad_frames = grad_frames + torch.cat([pad, torch.einsum("btmp,btm->btp", j_b, g_q)], 1)
    grad_shared = (torch.einsum("btms,btm->bs", j_fs, g_f) + torch.einsum("btms,btm->bs", j_qs, g_q)
                   + torch.einsum("bms,bm->bs", j_u, g_u))
    grad = torch.cat([grad_frames.flatten(1), grad_shared], 1)

    def gram(left: Tensor, right: Tensor) -> Tensor:
        return torch.einsum("...mi,...mj->...ij", left, right)

    p, s = j_f.shape[-1], j_fs.shape[-1]
    pad2 = torch.zeros_like(j_f[:, :1, :1, :1]).expand(-1, 1, p, p)
    diagonal = gram(j_f, m_f)
    diagonal = diagonal + torch.cat([gram(j_a, m_a), pad2], 1)
    diagonal = diagonal + torch.cat([pad2, gram(j_b, m_b)], 1)
    lower = gram(j_b, m_a)
    pad_s = torch.zeros_like(j_f[:, :1, :1, :1]).expand(-1, 1, p, s)
    border = gram(j_f, m_fs)
    border = border + torch.cat([gram(j_a, m_qs), pad_s], 1)
    border = border + torch.cat([pad_s, gram(j_b, m_qs)], 1)
    corner = gram(j_fs, m_fs).sum(1) + gram(j_qs, m_qs).sum(1) + gram(j_u, m_u)
    # M is symmetric, so these are too up to rounding: symmetrise for the Cholesky factorisations.
    diagonal = 0.5 * (diagonal + diagonal.transpose(-1, -2))
    corner = 0.5 * (corner + corner.transpose(-1, -2))
    return grad, BlockArrowMatrix(diagonal, lower, border, corner)
