"""sfbd.run.denoise: in-memory backward sampling of chosen rows (Online SFBD's refreshes),
dealt across ranks: every row exactly once, in index order, the same for 1, 2 and 3 processes."""

from __future__ import annotations

import numpy as np
import torch
from run_helpers import RING8_TINY

from sfbd.config import load_config
from sfbd.data import load_problem
from sfbd.diffusion.schedule import edm_sigmas
from sfbd.nets.gaussian import GaussianDenoiser
from sfbd.run.denoise import ShardedDenoiser
from sfbd.runtime.fast import FastPath

SETS = [*RING8_TINY, "sample.sampler=sde", "sample.steps=16", "sample.batch_size=7"]
INDEX = np.array([850, 3, 4, 5, 400, 401, 2, 9, 10, 11, 600])  # wraps, as a refresh can


def _denoiser() -> tuple[ShardedDenoiser, GaussianDenoiser]:
    cfg = load_config(overrides=SETS)
    den = ShardedDenoiser(
        cfg,
        load_problem(cfg),
        "/nonexistent",
        edm_sigmas(cfg.sample.steps),
        FastPath(),
        progress=False,
        log=lambda msg, warn: None,
        stop_requested=lambda: False,
    )
    model = GaussianDenoiser((2,))
    model.set_moments(torch.zeros(2), torch.eye(2) * 0.5)
    return den, model


def _rows(out=None) -> torch.Tensor:
    den, model = _denoiser()
    x = den.rows(model, INDEX, visit=2)
    if out is not None:
        np.save(out, x.numpy())
    return x


def _worker(rank, world, out):
    _rows(out / f"rows-w{world}-r{rank}.npy")


def test_rows_are_keyed_by_index_and_visit():
    x = _rows()
    assert x.shape == (len(INDEX), 2) and torch.isfinite(x).all()
    # the same sample denoised alone, in its own batch: the same result (keyed noise)
    den, model = _denoiser()
    alone = den.rows(model, INDEX[4:5], visit=2)
    assert torch.equal(alone[0], x[4])
    assert not torch.equal(den.rows(model, INDEX[4:5], visit=3)[0], x[4])  # another visit


def test_rows_dealt_across_1_2_and_3_processes_are_the_same(tmp_path):
    from ddp_helpers import run_ranks

    for world in (1, 2, 3):
        run_ranks(world, _worker, tmp_path)
    ref = np.load(tmp_path / "rows-w1-r0.npy")
    for world in (2, 3):
        for rank in range(world):  # every rank holds all rows, gathered in index order
            assert np.array_equal(np.load(tmp_path / f"rows-w{world}-r{rank}.npy"), ref)
