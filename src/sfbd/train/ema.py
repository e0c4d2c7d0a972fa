"""The exponential moving average (EMA) of a network's weights, with a half-life in steps.

After every optimizer step the averaged network (``TrainState.ema``) moves towards the trained
one, parameter by parameter::

    ema <- beta * ema + (1 - beta) * model,    beta = 0.5 ** (1 / max(1, h))

so the weight of a value taken ``n`` steps ago is ``beta ** n * (1 - beta)`` and that of the
starting weights after ``n`` steps is ``beta ** n = 0.5 ** (n / h)``: one half after ``h``
steps. Buffers (e.g. batch statistics) are copied, not averaged. A skipped step (non-finite
loss or gradients, see :mod:`sfbd.train.loop`) leaves the average unchanged.

The half-life is set per stage as a fraction of its length (``train.ema_halflife``,
:meth:`EMA.for_stage`), so a short warm-started update is not dominated by the weights it
started from.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """The averaging rule ``ema <- beta * ema + (1 - beta) * model`` with half-life
    ``halflife`` optimizer steps (at least 1: ``beta = 0.5 ** (1 / max(1, halflife))``)."""

    def __init__(self, halflife: float) -> None:
        self.halflife = halflife

    @classmethod
    def for_stage(cls, fraction: float, steps: int) -> EMA:
        """The EMA of a stage of ``steps`` steps whose half-life is ``fraction`` of them."""
        return cls(fraction * steps)

    @property
    def beta(self) -> float:
        """The decay per step: the average keeps ``beta`` of itself at every update."""
        return 0.5 ** (1.0 / max(1.0, self.halflife))

    @torch.no_grad()
    def update(self, ema: nn.Module, model: nn.Module, keep: torch.Tensor | None = None) -> None:
        """One step: ``ema``'s parameters <- beta * ema + (1 - beta) * model's, in place
        (``lerp_`` in each parameter's dtype); where ``keep`` (a 0-dim bool tensor, on the
        device) is False the parameters stay as they are, with no host synchronisation.
        Buffers are copied from ``model``."""
        beta = self.beta
        weight: float | torch.Tensor = 1.0 - beta
        if keep is not None:
            weight = keep.to(torch.float32) * (1.0 - beta)
        for e, p in zip(ema.parameters(), model.parameters(), strict=True):
            e.lerp_(p, weight.to(e.dtype) if isinstance(weight, torch.Tensor) else weight)
        for e, b in zip(ema.buffers(), model.buffers(), strict=True):
            e.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        """The rule's own state: its half-life (the averaged weights live in the network)."""
        return {"halflife": self.halflife}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.halflife = state["halflife"]

    def __repr__(self) -> str:
        return f"EMA(halflife={self.halflife!r})"
