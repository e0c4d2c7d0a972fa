"""Fast-path switches for training and sampling: bf16 autocast, channels_last, compile, fused Adam.

Each switch is a small function that does one thing and is a no-op when off, so the training
loop reads the same with and without them. :func:`resolve` turns the configuration strings
``'auto' | 'on' | 'off'`` into booleans with a per-device default:

=============  ======  =====
switch         cuda    cpu
=============  ======  =====
bf16           on      off
channels_last  on      off
compile        on      off
fused_adam     on      on
=============  ======  =====

bf16 is *autocast* only: master weights, optimizer moments, the loss and the sampler state stay
float32; matrix products and convolutions run in bfloat16 (8 exponent bits, so no loss scaling is
needed, unlike float16). Other devices (e.g. 'mps') default to everything off.

Non-finite steps: fused Adam reads an ``optimizer.found_inf`` tensor; when it holds 1.0 the step
is a no-op on the device (parameters, moments and step count unchanged), so a bad step is
skipped without a host-device synchronisation. :func:`step_unless_nonfinite` sets it from the
gradients; for a non-fused optimizer it falls back to checking on the host.

References: Micikevicius et al. 2018, "Mixed Precision Training" (fp32 master weights);
Kalamkar et al. 2019, "A Study of BFLOAT16 for Deep Learning Training"; Kingma & Ba 2015 (Adam).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

Switch = Literal["auto", "on", "off"]
SWITCHES = ("auto", "on", "off")

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@dataclass(frozen=True)
class FastPath:
    """Which fast-path switches are on for one device.

    Attributes:
        bf16: bfloat16 autocast of the forward pass (weights stay float32).
        channels_last: NHWC memory format for 4-D (image) networks.
        compile: ``torch.compile`` of the network.
        fused_adam: the fused (single-kernel) Adam implementation.
    """

    bf16: bool = False
    channels_last: bool = False
    compile: bool = False
    fused_adam: bool = False


DEFAULTS: dict[str, FastPath] = {
    "cuda": FastPath(bf16=True, channels_last=True, compile=True, fused_adam=True),
    "cpu": FastPath(bf16=False, channels_last=False, compile=False, fused_adam=True),
}
"""Per-device-type defaults that ``'auto'`` resolves to; other device types: all off."""


def device_type(device: torch.device | str) -> str:
    """'cuda', 'cpu', 'mps', ... for a device or a device string like 'cuda:1'."""
    return torch.device(device).type


def _switch(value: Switch | bool, default: bool, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if value not in SWITCHES:
        raise ValueError(f"{name} must be one of {SWITCHES} (or a bool), got {value!r}")
    return default if value == "auto" else value == "on"


def resolve(
    device: torch.device | str,
    *,
    bf16: Switch | bool = "auto",
    channels_last: Switch | bool = "auto",
    compile: Switch | bool = "auto",
    fused_adam: Switch | bool = "auto",
) -> FastPath:
    """The fast path for ``device``: each switch 'on', 'off' or 'auto' (the device default).

    Example: ``resolve("cuda")`` is all on; ``resolve("cpu", bf16="on")`` is bf16 and fused Adam.
    """
    d = DEFAULTS.get(device_type(device), FastPath())
    return FastPath(
        bf16=_switch(bf16, d.bf16, "bf16"),
        channels_last=_switch(channels_last, d.channels_last, "channels_last"),
        compile=_switch(compile, d.compile, "compile"),
        fused_adam=_switch(fused_adam, d.fused_adam, "fused_adam"),
    )


def autocast(
    device: torch.device | str, enabled: bool
) -> contextlib.AbstractContextManager[object]:
    """bfloat16 autocast on ``device``'s type when ``enabled``, else a null context.

    Use it around the forward pass and loss only (not around ``backward`` or the optimizer
    step); parameters and gradients stay float32.
    """
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type(device), dtype=torch.bfloat16)


def full_precision(device: torch.device | str) -> contextlib.AbstractContextManager[object]:
    """Switch off any autocast of ``device``'s type inside the block (e.g. for a metric's
    feature network, which must run in float32 whatever its caller enabled)."""
    kind = device_type(device)
    if kind not in ("cpu", "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=kind, enabled=False)


def to_channels_last(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Store the module's 4-D parameters and buffers in NHWC (channels_last) format, in place.

    A no-op (the same module, untouched) when ``enabled`` is False or the module has no 4-D
    tensors (e.g. an MLP). Values, shapes and ``state_dict`` keys are unchanged; only strides
    change, so checkpoints load either way.
    """
    if not enabled:
        return module
    tensors = [*module.parameters(), *module.buffers()]
    if not any(t.dim() == 4 for t in tensors):
        return module
    return module.to(memory_format=torch.channels_last)


def channels_last_input(x: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    """``x`` (B, C, H, W) in channels_last format when ``enabled``; other tensors unchanged."""
    if enabled and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def maybe_compile(module: nn.Module, enabled: bool, **options: object) -> nn.Module:
    """Compile ``module`` with ``torch.compile`` when ``enabled``; return it either way.

    The module is compiled *in place* (``nn.Module.compile``): the returned object is the same
    module, so ``state_dict`` keys carry no ``_orig_mod.`` prefix, ``isinstance`` checks and
    attribute access (``denoiser.net``) keep working, and ``copy.deepcopy`` gives a module that
    runs its own weights. ``options`` go to ``torch.compile`` (e.g. ``mode="reduce-overhead"``,
    ``dynamic=False``). Compilation happens lazily on the first call.
    """
    if enabled:
        module.compile(**options)
    return module


def fused_adam_supported(params: Iterable[torch.Tensor]) -> bool:
    """Whether ``torch.optim.Adam(..., fused=True)`` accepts these parameters."""
    kinds = {(p.dtype, p.device) for p in params}  # one probe per (dtype, device)
    probe = [torch.zeros(1, dtype=dt, device=dev, requires_grad=True) for dt, dev in kinds]
    try:
        torch.optim.Adam(probe or [torch.zeros(1, requires_grad=True)], fused=True)
    except (RuntimeError, ValueError):
        return False
    return True


def make_adam(
    params: Iterable[torch.Tensor] | Iterable[dict],
    lr: float,
    *,
    fused: bool | None = None,
) -> torch.optim.Adam:
    """Adam with betas (0.9, 0.999), eps 1e-8 (the paper's and EDM's settings).

    Args:
        params: parameters or parameter groups.
        lr: learning rate (a float; change ``param_groups[i]['lr']`` for warm-up).
        fused: True: the fused implementation (raises if the device/dtype lacks it);
            False: the default (foreach) implementation; None: fused where supported (CUDA,
            and CPU from torch 2.4), else the default.
    Returns:
        The optimizer; ``optimizer.defaults['fused']`` says which implementation it is.
    """
    params = list(params)
    if fused is None:
        tensors = [
            p for item in params for p in (item["params"] if isinstance(item, dict) else [item])
        ]
        fused = fused_adam_supported(tensors)
    kwargs = {"fused": True} if fused else {}
    return torch.optim.Adam(params, lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS, **kwargs)


def is_fused(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the optimizer is a fused implementation (which honours ``found_inf``)."""
    return bool(optimizer.defaults.get("fused"))


def _grads(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]


def nonfinite_flag(grads: list[torch.Tensor]) -> torch.Tensor:
    """0-d float tensor on the gradients' device: 1.0 if any gradient is NaN/inf, else 0.0.

    Computed on the device (no synchronisation), as 1 - isfinite(total gradient norm): a
    non-finite entry makes the norm non-finite. (So does a norm overflowing float32, i.e.
    entries around 1e19, which is as good a reason to skip the step.)
    """
    if not grads:
        return torch.zeros(())
    total = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
    return (~torch.isfinite(total)).to(torch.float32)


def step_unless_nonfinite(optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """``optimizer.step()`` unless some gradient is non-finite; returns the 0-d skip flag.

    With a fused optimizer the check stays on the device: the flag becomes
    ``optimizer.found_inf``, which makes the fused step a no-op (parameters, moments and step
    count unchanged) when it is 1. Otherwise the flag is read on the host (one synchronisation)
    and ``step`` is not called when it is set. Either way the caller can accumulate the
    returned flag to count skipped steps without synchronising.
    """
    flag = nonfinite_flag(_grads(optimizer))
    step_or_skip(optimizer, flag)
    return flag


def step_or_skip(optimizer: torch.optim.Optimizer, skip: torch.Tensor) -> None:
    """``optimizer.step()`` unless the 0-d ``skip`` flag (bool or 0/1 float) is set: on the
    device (``found_inf``) for a fused optimizer, else by reading the flag on the host."""
    if is_fused(optimizer):
        optimizer.found_inf = skip.to(torch.float32)  # type: ignore[attr-defined]
        optimizer.step()
    elif not bool(skip):
        optimizer.step()


__all__ = [
    "DEFAULTS",
    "SWITCHES",
    "FastPath",
    "autocast",
    "channels_last_input",
    "device_type",
    "fused_adam_supported",
    "is_fused",
    "make_adam",
    "maybe_compile",
    "nonfinite_flag",
    "resolve",
    "step_or_skip",
    "step_unless_nonfinite",
    "to_channels_last",
]
