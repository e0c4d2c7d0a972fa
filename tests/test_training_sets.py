"""Training sets (sfbd.train.data): drawing by index across sources gives the batches of the
concatenated array, with the same generator, whether gathered per batch or held on the device."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sfbd.io.arrays import Samples, Stacked
from sfbd.train.data import ArrayTrainingSet, IndexedTrainingSet


def _parts(tmp_path):
    rng = np.random.default_rng(0)
    e = rng.standard_normal((300, 2, 3)).astype(np.float32)
    np.save(tmp_path / "e.npy", e)
    clean = rng.integers(0, 256, (40, 2, 3), dtype=np.uint8)
    np.save(tmp_path / "c.npy", clean)
    mapped = np.load(tmp_path / "e.npy", mmap_mode="r")
    view = Samples(np.load(tmp_path / "c.npy", mmap_mode="r"))
    return Stacked([mapped, view]), np.concatenate([e, np.asarray(view)])


@pytest.mark.parametrize("resident", [False, True])
def test_indexed_draws_are_the_concatenated_arrays_draws(tmp_path, resident):
    data, cat = _parts(tmp_path)
    lazy = IndexedTrainingSet(data, torch.device("cpu"), resident=resident)
    eager = ArrayTrainingSet(torch.as_tensor(cat))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for n in (1, 64, 257):
        a, b = lazy.draw(g1, n), eager.draw(g2, n)
        assert a.dtype == torch.float32 and torch.equal(a, b)
    pop, w = lazy.population()
    assert w is None and torch.equal(pop, torch.as_tensor(cat))
    assert len(lazy) == 340


def test_an_empty_training_set_is_refused():
    with pytest.raises(ValueError, match="at least one sample"):
        IndexedTrainingSet(np.zeros((0, 2), np.float32), torch.device("cpu"))


def test_under_ddp_a_process_reads_only_its_rows_of_the_global_batch(tmp_path):
    data, cat = _parts(tmp_path)
    whole = IndexedTrainingSet(data, torch.device("cpu"))
    part = IndexedTrainingSet(data, torch.device("cpu"))
    part.rows = range(40, 70)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    for _ in range(3):
        a, b = whole.draw(g1, 100), part.draw(g2, 100)
        assert torch.equal(b[40:70], a[40:70])
        assert not b[:40].any() and not b[70:].any() and a[:40].abs().sum() > 0


@pytest.mark.parametrize("resident", [False, True])
def test_levels_are_drawn_with_the_rows_and_change_no_batch(tmp_path, resident):
    """draw_levels gives row i's level with row i (the ambient mixture's tau_i), and the same
    batches as draw and as a set without levels, from the same generator."""
    data, cat = _parts(tmp_path)
    levels = np.arange(len(cat), dtype=np.float64) / 100  # row i's level: i / 100
    lev = IndexedTrainingSet(data, torch.device("cpu"), resident=resident, levels=levels)
    plain = IndexedTrainingSet(data, torch.device("cpu"), resident=resident)
    assert lev.has_levels and not plain.has_levels
    g1, g2, g3 = (torch.Generator().manual_seed(7) for _ in range(3))
    for n in (1, 64, 257):
        (a, tau), b = lev.draw_levels(g1, n), plain.draw(g2, n)
        c, none = plain.draw_levels(g3, n)
        assert torch.equal(a, b) and torch.equal(c, b) and none is None
        assert tau.dtype == torch.float64 and tau.shape == (n,)
        rows = torch.round(tau * 100).long()  # which row each level came from
        assert torch.equal(a, torch.as_tensor(cat)[rows])


def test_under_ddp_every_process_gets_every_rows_level(tmp_path):
    data, cat = _parts(tmp_path)
    levels = np.linspace(0, 1, len(cat))
    whole = IndexedTrainingSet(data, torch.device("cpu"), levels=levels)
    part = IndexedTrainingSet(data, torch.device("cpu"), levels=levels)
    part.rows = range(40, 70)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    (a, ta), (b, tb) = whole.draw_levels(g1, 100), part.draw_levels(g2, 100)
    assert torch.equal(ta, tb) and torch.equal(a[40:70], b[40:70])


def test_levels_must_be_one_per_row_finite_and_non_negative():
    x = np.zeros((5, 2), np.float32)
    for bad in (np.zeros(4), np.array([0, 0, -1, 0, 0.0]), np.array([0, np.nan, 0, 0, 0])):
        with pytest.raises(ValueError, match="one per row"):
            IndexedTrainingSet(x, torch.device("cpu"), levels=bad)
