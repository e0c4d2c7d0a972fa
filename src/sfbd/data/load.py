"""Building a run's :class:`~sfbd.data.problem.Problem` from its configuration.

Every input is read and checked here, before a run writes anything: benchmark mode's source
(split by :func:`sfbd.data.benchmark.split_benchmark`), user mode's noisy and clean files,
``data.pretrain`` and ``eval.reference``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sfbd.data.benchmark import split_benchmark
from sfbd.data.holdout import hold_out_noisy
from sfbd.data.problem import Problem, at_least_two, check_shape
from sfbd.data.sources import BUILTINS, builtin, load_array
from sfbd.errors import DataError
from sfbd.io.arrays import SampleArray
from sfbd.noise import from_config

if TYPE_CHECKING:
    from sfbd.schema import Config


def load_pretrain(cfg: Config) -> SampleArray:
    """The ``data.pretrain`` samples: a builtin (a draw independent of ``data.source``) or a path.

    Builtins read ``data.num_samples``, ``data.root`` and ``data.image_size`` as
    ``data.source`` does; paths are read like ``data.clean`` (.npy/.npz, image folder or zip).
    """
    d = cfg.data
    assert d.pretrain is not None
    if d.pretrain in BUILTINS:
        x, _ = builtin(
            d.pretrain,
            d.num_samples,
            root=d.root,
            image_size=d.image_size,
            draw=1,
            cache_dir=d.cache_dir,
        )
    else:
        x, _ = load_array(d.pretrain, "data.pretrain", cache_dir=d.cache_dir)
    at_least_two("data.pretrain", x, "give a larger set of clean samples")
    return x


def load_problem(cfg: Config, *, pretrain: bool | None = None) -> Problem:
    """Build the run's :class:`Problem` from the configuration (benchmark or user mode).

    ``pretrain``: whether the run reads ``data.pretrain``, as its method decides
    (:meth:`~sfbd.methods.base.Method.uses_pretrain`); None: whenever it is set.

    The held-out noisy samples (``eval.noisy_holdout``) are then moved out of the training
    set (:func:`sfbd.data.holdout.hold_out_noisy`). Every input is read and checked here,
    before a run writes anything: readable, finite,
    non-empty, one per-sample shape for noisy, clean, pretrain and reference samples, and at
    least 2 clean, pretrain and reference samples where they are given.
    """
    d = cfg.data
    reference, scale = None, "float"
    if cfg.eval.reference is not None:
        reference, _ = load_array(cfg.eval.reference, "eval.reference", cache_dir=d.cache_dir)
        at_least_two("eval.reference", reference, "the metrics compare two sets of samples")
    if d.source is not None:
        if d.source in BUILTINS:
            src, scale = builtin(
                d.source,
                d.num_samples,
                root=d.root,
                image_size=d.image_size,
                cache_dir=d.cache_dir,
            )
        else:
            src, scale = load_array(d.source, "data.source", cache_dir=d.cache_dir)
        prob = split_benchmark(src, cfg, reference is not None)
        prob.scale = scale
    else:
        noisy = clean = None
        if d.noisy is not None:
            noisy, scale = load_array(d.noisy, "data.noisy", images_ok=False, cache_dir=d.cache_dir)
            if scale == "uint8":
                raise DataError(
                    f"data.noisy {d.noisy!r} holds uint8 values: noise cannot be stored in 8 "
                    "bits without rounding and clipping it, so its known level would be wrong; "
                    "save the noisy samples as floats (e.g. float32 in the [-1, 1] scale)"
                )
        if d.clean is not None:
            clean, clean_scale = load_array(d.clean, "data.clean", cache_dir=d.cache_dir)
            scale = scale if noisy is not None else clean_scale
        if noisy is not None and clean is not None:
            check_shape("clean", clean, tuple(noisy.shape[1:]), "noisy")
        if clean is not None:
            at_least_two(
                "data.clean", clean, "add clean samples, or unset it and set data.pretrain"
            )
        template = noisy if noisy is not None else clean
        assert template is not None
        empty = np.zeros((0, *template.shape[1:]), np.float32)
        noise = from_config(cfg, n=len(noisy) if noisy is not None else None)
        z_clean, z_noisy = noise.to_model_space(
            clean if clean is not None else empty,
            noisy if noisy is not None else empty,
            ("data.clean", "data.noisy"),
        )
        prob = Problem(clean=z_clean, noisy=z_noisy, corruption=noise, scale=scale)
    if pretrain is None:
        pretrain = d.pretrain is not None
    if pretrain and d.pretrain is not None:
        extra = load_pretrain(cfg)
        check_shape("data.pretrain", extra, prob.shape, "noisy" if len(prob.noisy) else "clean")
        prob.pretrain, _ = prob.corruption.to_model_space(
            extra, extra[:0], ("data.pretrain", "data.noisy")
        )
    if reference is not None:
        check_shape("eval.reference", reference, prob.shape, "training")
        prob.reference = reference
    return hold_out_noisy(prob, cfg)
