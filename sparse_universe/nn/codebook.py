"""``TokenCodebook``: M learnable, quantised particle tokens."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..neighbors.checks import check_int


class Quantized(NamedTuple):
    """Result of :meth:`TokenCodebook.quantize`."""

    z_q: Tensor  # (N, d) nearest tokens, straight-through to z
    index: Tensor  # (N,) chosen token ids
    codebook_loss: Tensor  # () ||sg(z) - e||^2: moves tokens toward inputs
    commitment_loss: Tensor  # () ||z - sg(e)||^2: keeps inputs near their token


class TokenCodebook(nn.Module):
    r"""The seed's :math:`M` quantised learnable tokens :math:`\tau \in \mathbb{R}^d`.

    .. math::
        \operatorname{embed}(m) = \mathbf{e}_m, \qquad
        \operatorname{quantize}(\mathbf{z}) = \mathbf{z} + \varphi(\mathbf{e}_{m^*} - \mathbf{z}),
        \quad m^* = \arg\min_m \lVert \mathbf{z} - \mathbf{e}_m \rVert

    where :math:`\varphi` is stop-gradient (VQ-VAE's straight-through estimator:
    the forward value is the token, the gradient reaches ``z`` unchanged).

    Args:
        num_tokens (int): :math:`M`.
        dim (int): token dimension :math:`d`.

    Shapes:
        index ``(N,)`` -> ``(N, d)``; z ``(N, d)`` -> :class:`Quantized`.
    """

    def __init__(self, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.num_tokens, self.dim = check_int(num_tokens, "num_tokens", 1), check_int(dim, "dim", 1)
        self.weight = nn.Parameter(torch.empty(num_tokens, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)

    def forward(self, index: Tensor) -> Tensor:
        out_of_range = index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.num_tokens)
        if index.dtype.is_floating_point or out_of_range:
            got = index.dtype if index.dtype.is_floating_point else f"range [{int(index.min())}, {int(index.max())}]"
            raise ValueError(f"Expected token 'index' integers in [0, {self.num_tokens}) (got {got})")
        return self.weight.index_select(0, index.view(-1)).view(*index.shape, self.dim)

    def quantize(self, z: Tensor) -> Quantized:
        if z.size(-1) != self.dim:
            raise ValueError(f"Expected 'z' with last dimension {self.dim} (got shape {tuple(z.shape)})")
        index = torch.cdist(z.detach(), self.weight.detach()).argmin(dim=-1)  # (N,)
        e = self.weight.index_select(0, index)  # (N, d)
        codebook = ((z.detach() - e) ** 2).sum(-1).mean()
        commitment = ((z - e.detach()) ** 2).sum(-1).mean()
        return Quantized(z + (e - z).detach(), index, codebook, commitment)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.num_tokens}, {self.dim})"
