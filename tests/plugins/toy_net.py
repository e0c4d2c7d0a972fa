"""A toy network, registered from outside sfbd (tests/test_plugins.py, docs/extending.md).

``toy-linear``: F(x, c_noise) = W2 SiLU(W1 [x, c_noise]) on flattened samples of any shape,
``model.toy_width`` hidden units, inside EDM's preconditioning like sfbd's own networks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from sfbd.errors import ConfigError
from sfbd.nets.base import NETWORKS, Network


class ToyLinear(nn.Module):
    def __init__(self, shape: Sequence[int], width: int = 16) -> None:
        super().__init__()
        self.shape, self.width = tuple(int(s) for s in shape), int(width)
        d = math.prod(self.shape)
        self.fc1 = nn.Linear(d + 1, width)
        self.fc2 = nn.Linear(width, d)

    def forward(self, x: Tensor, noise_labels: Tensor, aug_labels: Tensor | None = None) -> Tensor:
        h = torch.cat([x.flatten(1), noise_labels.reshape(-1, 1).to(x.dtype)], dim=1)
        return self.fc2(torch.nn.functional.silu(self.fc1(h))).reshape(x.shape)

    def config(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "width": self.width}


@dataclass
class ToyNetKeys:
    toy_width: int = 16  # toy-linear: hidden units


def _kwargs(cfg: Any, shape: tuple[int, ...]) -> dict[str, Any]:
    return {"shape": list(shape), "width": cfg.model.toy_width}


def _check(cfg: Any) -> None:
    if cfg.model.toy_width < 1:
        raise ConfigError(f"model.toy_width must be >= 1, got {cfg.model.toy_width}")


NETWORKS.add("toy-linear", Network(ToyLinear, _kwargs, rank=None, Keys=ToyNetKeys, check=_check))
