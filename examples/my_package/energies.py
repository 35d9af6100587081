"""The tutorial's energy: a smooth robust centre of a 2-D point cloud."""

import torch
from torch import Tensor, nn

import lightning_energy as le


class SoftCentre(le.Energy):
    """E_b(x) = Σ_i δ²(√(1 + ‖x − p_bi‖²/δ²) − 1) + ½·ε‖x‖², x: (B, 2), inputs p: (B, P, 2)."""

    solution_shape = (2,)

    def __init__(self, scale: float = 1.0, eps: float = 1e-3) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(scale).log())
        self.eps = eps

    def forward(self, x: Tensor, inputs: Tensor) -> Tensor:
        d2 = self.log_scale.exp().to(x.dtype) ** 2
        squared = ((inputs.to(x.dtype) - x[:, None, :]) ** 2).sum(-1)     # (B, P)
        robust = d2 * (torch.sqrt(1 + squared / d2) - 1)
        return robust.sum(-1) + 0.5 * self.eps * (x**2).sum(-1)           # (B,)

    def initial_solution(self, inputs: Tensor) -> Tensor:
        return inputs.detach().mean(1)                                     # (B, 2)
