"""Residual MLP denoiser for vector data (e.g. 2-D toy mixtures).

This is the raw network F of EDM preconditioning: the wrapper computes
``D(x, sigma) = c_skip * x + c_out * F(c_in * x, c_noise)``, so F sees unit-scale inputs and the
noise label ``c_noise = ln(sigma) / 4``. The output layer starts at zero, so D starts as
``c_skip * x``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn
from torch.nn import functional as F

from sfbd.errors import ConfigError
from sfbd.nets.base import NETWORKS, Network
from sfbd.nets.embedding import NoiseEmbedding

if TYPE_CHECKING:
    from sfbd.schema import Config


class _ResidualLayer(nn.Module):
    """``h + Linear(SiLU(LayerNorm(h) + Linear(SiLU(emb))))``: one conditioned hidden layer."""

    def __init__(self, hidden: int, emb_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.cond = nn.Linear(emb_dim, hidden)
        self.fc = nn.Linear(hidden, hidden)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        return h + self.fc(F.silu(self.norm(h) + self.cond(F.silu(emb))))


class MLP(nn.Module):
    """Noise-conditioned residual MLP for vectors: (B, D) -> (B, D).

    Architecture::

        e = NoiseEmbedding(noise_labels)                       (B, emb_dim)
        h = Linear(x) + Linear(SiLU(e))                        (B, hidden)
        repeat `layers` times:
            h = h + Linear(SiLU(LayerNorm(h) + Linear(SiLU(e))))
        out = Linear_zero_init(SiLU(LayerNorm(h)))             (B, D)

    LayerNorm acts per sample, so the output for one sample never depends on the rest of the
    batch. ``MLP((2,))`` with the defaults has 365,826 parameters.

    Args:
        shape: per-sample shape ``(D,)``.
        hidden: width of the hidden layers.
        layers: number of residual hidden layers.
        emb_dim: size of the noise embedding.
    """

    def __init__(
        self,
        shape: Sequence[int],
        *,
        hidden: int = 256,
        layers: int = 3,
        emb_dim: int = 128,
    ) -> None:
        super().__init__()
        shape = tuple(int(s) for s in shape)
        if len(shape) != 1:
            raise ValueError(f"MLP expects a per-sample shape (D,), got {shape}")
        if layers < 0:
            raise ValueError(f"layers must be >= 0, got {layers}")
        self.shape: tuple[int, ...] = shape
        self.hidden = int(hidden)
        self.layers = int(layers)
        self.emb_dim = int(emb_dim)
        dim = shape[0]

        self.embed = NoiseEmbedding(self.emb_dim)
        self.in_proj = nn.Linear(dim, self.hidden)
        self.in_cond = nn.Linear(self.emb_dim, self.hidden)
        self.blocks = nn.ModuleList(
            _ResidualLayer(self.hidden, self.emb_dim) for _ in range(self.layers)
        )
        self.out_norm = nn.LayerNorm(self.hidden)
        self.out = nn.Linear(self.hidden, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def config(self) -> dict[str, Any]:
        """Constructor kwargs (JSON-serialisable): ``MLP(**net.config())`` rebuilds the net."""
        return {
            "shape": list(self.shape),
            "hidden": self.hidden,
            "layers": self.layers,
            "emb_dim": self.emb_dim,
        }

    def forward(self, x: Tensor, noise_labels: Tensor, aug_labels: Tensor | None = None) -> Tensor:
        """Raw denoiser output.

        Args:
            x: (B, D) inputs already scaled by c_in.
            noise_labels: (B,) noise labels c_noise = ln(sigma)/4.
            aug_labels: ignored (reserved for augmentation conditioning).

        Returns:
            (B, D) tensor with the dtype of ``x``.
        """
        del aug_labels
        emb = self.embed(noise_labels)
        h = self.in_proj(x) + self.in_cond(F.silu(emb))
        for block in self.blocks:
            h = block(h, emb)
        return self.out(F.silu(self.out_norm(h))).to(x.dtype)


__all__ = ["MLP"]


@dataclass
class MLPKeys:
    """The ``model.*`` keys of the MLP."""

    hidden: int = 256  # mlp: width
    layers: int = 3  # mlp: residual blocks


def _kwargs(cfg: Config, shape: tuple[int, ...]) -> dict[str, Any]:
    m = cfg.model
    return {"shape": list(shape), "hidden": m.hidden, "layers": m.layers}


def _check(cfg: Config) -> None:
    if not (cfg.model.hidden > 0 and cfg.model.layers > 0):
        raise ConfigError("model.hidden and model.layers must be > 0")


NETWORKS.add(
    "mlp",
    Network(MLP, _kwargs, rank=1, auto_for_rank=1, Keys=MLPKeys, check=_check),
)
