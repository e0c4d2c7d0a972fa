"""A toy noise model, registered from outside sfbd (tests/test_plugins.py, docs/extending.md).

``toy-scaled``: white Gaussian noise of std ``data.toy_level`` on data shrunk by one half,
y = x / 2 + s * eps. Its model space is z = x / 2 (decode: x = 2 z), where the noise is white
at tau = s, so backward sampling is the usual reverse diffusion from x(s) = y.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sfbd.errors import ConfigError, SfbdError
from sfbd.noise.base import NOISE_MODELS, WhiteInModelSpace
from sfbd.rng import keyed_randn, stream_id


@dataclass
class ToyKeys:
    toy_level: float | None = None  # toy-scaled: std of the noise on x / 2


@NOISE_MODELS.register("toy-scaled")
class ToyScaled(WhiteInModelSpace):
    name = "toy-scaled"
    Keys = ToyKeys
    arguments = {"toy_level": "toy noise: its level"}

    def __init__(self, level: float) -> None:
        self.level = float(level)

    @classmethod
    def claims(cls, data: Any) -> list[str]:
        return ["data.toy_level"] if data.toy_level is not None else []

    @classmethod
    def validate_config(cls, cfg: Any) -> None:
        level = cfg.data.toy_level
        if level is None or not (math.isfinite(level) and level > 0):
            raise ConfigError(f"data.toy_level must be a number > 0, got {level}")

    @classmethod
    def from_config(cls, cfg: Any, index: Any = None, n: Any = None) -> ToyScaled:
        return cls(cfg.data.toy_level)

    @classmethod
    def describe_config(cls, data: Any) -> str:
        return f"toy noise, level {data.toy_level:g} on x / 2"

    @classmethod
    def from_arguments(cls, args: dict[str, Any], *, n: Any, seed: int) -> ToyScaled:
        level = float(args["toy_level"])
        if not level > 0:
            raise SfbdError(f"--toy-level must be > 0, got {level}")
        return cls(level)

    @property
    def tau(self) -> float:
        return self.level

    @property
    def transforms(self) -> bool:
        return True

    def corrupt(self, x: np.ndarray, index: np.ndarray, noise_seed: int) -> np.ndarray:
        eps = keyed_randn(
            torch.as_tensor(np.ascontiguousarray(index), dtype=torch.int64),
            tuple(x.shape[1:]),
            stream=stream_id("toy-noise", noise_seed),
        ).numpy()
        return (x / 2 + self.level * eps).astype(np.float32)

    def encode(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x) / 2).astype(np.float32)

    def encode_noisy(self, y: np.ndarray, index: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float32)  # already z + s * eps

    def decode(self, z: np.ndarray) -> np.ndarray:
        return (2 * np.asarray(z)).astype(np.float32)

    def spec(self) -> dict[str, Any]:
        return {"noise": self.name, "level": self.level}

    def describe(self) -> str:
        return f"toy level {self.level:g}"

    @classmethod
    def example(cls, shape: tuple[int, ...], n: int) -> ToyScaled:
        return cls(0.3)
