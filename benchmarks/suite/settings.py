"""Sizes of the quality benchmark's suites (full and quick) and the methods it compares."""

from __future__ import annotations

from dataclasses import dataclass, field

METHODS = ("oracle", "clean-only", "noisy-only", "sfbd", "online-sfbd")
BASELINES = ("oracle", "clean-only", "noisy-only")
ITERATIVE = {"sfbd": "tab:blue", "online-sfbd": "tab:cyan"}  # methods with a row per stage
GMM = "gmm8"  # the 8-D Gaussian mixture made by the suite (suite/data.py)
COLORS = {
    "oracle": "tab:green",
    "clean-only": "tab:orange",
    "noisy-only": "tab:red",
    "pretrain-only": "tab:purple",
}
PHOTONS = (1000, 100, 30, 10, 3)  # section 7 c: photons at full scale (u = 1)


@dataclass(frozen=True)
class Suite:
    """Sizes of one suite (full or quick)."""

    datasets: tuple[str, ...]
    seeds: int  # section 1, vector sets
    image_seeds: int  # section 1, digits (the U-Net is ~20x slower per step on CPU)
    vector: dict[str, str]  # overrides for the 2-D / 8-D sets
    image: dict[str, str]  # overrides for digits (data.source is added: the 2/3 split)
    samplers: tuple[tuple[str, int], ...]  # section 2: (sample.sampler, sample.steps)
    fractions: tuple[float, ...]  # section 3
    sigmas: tuple[float, ...]  # section 4
    gauss_seeds: int  # section 5
    pretrain_sets: tuple[str, ...]  # section 6 (each also in `datasets`: its runs are shared)
    noise_seeds: int = 2  # section 7 a-b (suite/noise/)
    photons: tuple[int, ...] = PHOTONS  # section 7 c: photons at full scale
    noise_gauss_samples: int = 100_000  # section 7 d: Gaussian draws
    linear_sets: tuple[str, ...] = ("digits", "patches")  # section 9: masked, blurred
    linear_methods: tuple[str, ...] = (*METHODS, "naive")  # section 9 (naive: data.naive)
    linear: dict[str, str] = field(default_factory=dict)  # section 9: extra overrides
    linear_posterior: tuple[int, int] = (64, 8)  # section 9: (rows, draws) of the posterior mean
    common: dict[str, str] = field(default_factory=lambda: {"device": "cpu"})


VECTOR_FULL = {
    "data.num_samples": "8000",
    "data.holdout": "0.25",
    "data.clean_fraction": "0.02",
    "data.sigma": "0.35",
    "model.hidden": "64",
    "model.layers": "2",
    "train.pretrain_steps": "600",
    "train.update_steps": "250",
    "train.batch_size": "256",
    "sfbd.iterations": "3",
    "eval.num_samples": "2000",
}
IMAGE_FULL = {
    "data.holdout": "0.2",
    "data.clean_fraction": "0.1",
    "data.sigma": "0.6",
    "model.channels": "16",
    "train.pretrain_steps": "200",
    "train.update_steps": "70",
    "train.lr_warmup": "100",
    "train.batch_size": "128",
    "sample.steps": "32",
    "sfbd.iterations": "3",
    "eval.num_samples": "500",
    "sample.batch_size": "1000",
}
SUITES = {
    "full": Suite(
        datasets=("ring8", "checkerboard", "swissroll", GMM, "digits"),
        seeds=3,
        image_seeds=3,
        vector=VECTOR_FULL,
        image=IMAGE_FULL,
        samplers=(("heun", 18), ("heun", 32), ("heun", 64), ("sde", 64), ("sde", 256)),
        fractions=(0.005, 0.01, 0.02, 0.04, 0.1),
        sigmas=(0.2, 0.35, 0.5, 0.8),
        gauss_seeds=3,
        pretrain_sets=("ring8", "digits"),
    ),
    "quick": Suite(
        datasets=("ring8", GMM),
        seeds=1,
        image_seeds=1,
        vector={
            **VECTOR_FULL,
            "data.num_samples": "4000",
            "train.pretrain_steps": "150",
            "train.update_steps": "80",
            "train.lr_warmup": "50",
            "sfbd.iterations": "2",
            "eval.num_samples": "1000",
        },
        image=IMAGE_FULL,
        samplers=(("heun", 18), ("heun", 32), ("heun", 64), ("sde", 64)),
        fractions=(0.02, 0.1),
        sigmas=(0.35, 0.8),
        gauss_seeds=1,
        pretrain_sets=("ring8",),
        noise_seeds=1,
        photons=(30,),
        noise_gauss_samples=20_000,
        linear_sets=("digits",),
        linear_methods=("oracle", "clean-only", "naive", "sfbd"),
        linear_posterior=(8, 2),
        linear={
            "train.pretrain_steps": "60",
            "train.update_steps": "20",
            "sfbd.iterations": "1",
            "sample.steps": "6",
            "eval.num_samples": "200",
        },
    ),
}


def ring8_base(suite: Suite) -> dict[str, str]:
    """ring8 at seed 0: the base of sections 2-4 and of section 1's ring8 sample figure."""
    return {**suite.vector, "data.source": "ring8", "seed": "0", "data.noise_seed": "0"}
