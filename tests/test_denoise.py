"""sfbd.run.denoise: in-memory backward sampling of chosen rows (Online SFBD's refreshes),
dealt across ranks: every row exactly once, in index order, the same for 1, 2 and 3 processes;
and masked observations (MMPS backward sampling) the same way, in memory and in E_k's shards."""

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
MASKED = [*SETS, "data.mask_keep=0.6", "data.sigma=0.1", "sample.cg_steps=2"]
INDEX = np.array([850, 3, 4, 5, 400, 401, 2, 9, 10, 11, 600])  # wraps, as a refresh can


def _denoiser(sets=SETS, out="/nonexistent") -> tuple[ShardedDenoiser, GaussianDenoiser]:
    cfg = load_config(overrides=sets)
    den = ShardedDenoiser(
        cfg,
        load_problem(cfg),
        out,
        edm_sigmas(cfg.sample.steps),
        FastPath(),
        progress=False,
        log=lambda msg, warn: None,
        stop_requested=lambda: False,
    )
    model = GaussianDenoiser((2,))
    model.set_moments(torch.zeros(2), torch.eye(2) * 0.5)
    return den, model


def _rows(out=None, sets=SETS) -> torch.Tensor:
    den, model = _denoiser(sets)
    x = den.rows(model, INDEX, visit=2)
    if out is not None:
        np.save(out, x.numpy())
    return x


def _worker(rank, world, out, sets=SETS):
    _rows(out / f"rows-w{world}-r{rank}.npy", sets)


def _full_pass_worker(rank, world, out):
    from sfbd.runtime.interrupt import NEVER

    den, model = _denoiser([*MASKED, "sample.shard_size=300"], out)
    den.full_pass(1, model, NEVER)


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


def test_masked_rows_and_shards_are_the_same_for_1_and_2_processes(tmp_path):
    """MMPS through the same dealing: the rows, and E_1 written in shards by each rank."""
    from ddp_helpers import run_ranks

    from sfbd.run.denoise import read_denoised

    ref = _rows(sets=MASKED)
    assert ref.shape == (len(INDEX), 2) and torch.isfinite(ref).all()
    assert not torch.allclose(ref, _rows(sets=SETS))  # the masks do change the draws
    run_ranks(2, _worker, tmp_path, MASKED)
    for rank in range(2):
        assert np.array_equal(np.load(tmp_path / f"rows-w2-r{rank}.npy"), ref.numpy())
    sets = {}
    for world in (1, 2):
        run_ranks(world, _full_pass_worker, tmp_path / f"w{world}")
        sets[world] = read_denoised(tmp_path / f"w{world}", 1)
    index, x = sets[1]
    assert np.array_equal(index, np.arange(len(index))) and len(index) > 600
    assert len(list((tmp_path / "w2" / "denoised" / "E_01").glob("shard-*.npz"))) >= 3
    assert np.array_equal(sets[2][0], index) and np.array_equal(sets[2][1], x)
    # a row of E_1 (visit 1) is that row drawn alone in memory at visit 1: keyed the same way
    den, model = _denoiser(MASKED)
    assert np.array_equal(den.rows(model, np.array([3]), visit=1).numpy()[0], x[3])
