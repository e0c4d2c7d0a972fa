"""sfbd.data.holdout: the held-out noisy set is kept out of training, in both modes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from run_helpers import RING8_TINY, sfbd_run

from sfbd.config import load_config
from sfbd.data import load_problem
from sfbd.data.holdout import hold_out_noisy, holdout_rows
from sfbd.errors import DataError
from sfbd.noise import WhiteGaussian


def _cfg(*sets: str):
    return load_config(overrides=["data.source=ring8", "data.num_samples=1000", *sets])


def test_rows_are_seeded_sized_and_capped() -> None:
    rows = holdout_rows(1000, _cfg())
    assert len(rows) == 50 and np.all(np.diff(rows) > 0) and rows.max() < 1000
    assert np.array_equal(rows, holdout_rows(1000, _cfg()))  # fixed by data.noise_seed
    assert not np.array_equal(rows, holdout_rows(1000, _cfg("data.noise_seed=1")))
    assert len(holdout_rows(1000, _cfg("eval.noisy_holdout_max=7"))) == 7
    assert len(holdout_rows(1000, _cfg("eval.noisy_holdout=0"))) == 0
    assert len(holdout_rows(40, _cfg())) == 2  # 5% of 40
    assert len(holdout_rows(20, _cfg())) == 0  # 5% of 20 is one sample: too few to score


def test_benchmark_holdout_is_out_of_the_training_set() -> None:
    whole = load_problem(_cfg("eval.noisy_holdout=0"))
    prob = load_problem(_cfg())
    h = prob.holdout
    assert h is not None and len(h.noisy) + len(prob.noisy) == len(whole.noisy)
    keep = np.setdiff1d(np.arange(len(whole.noisy)), h.index)
    # the same noisy samples, the held-out ones moved: training never sees them
    assert np.array_equal(np.asarray(prob.noisy), np.asarray(whole.noisy)[keep])
    assert np.array_equal(np.asarray(h.noisy), np.asarray(whole.noisy)[h.index])
    assert np.array_equal(np.asarray(h.truth), np.asarray(whole.noisy_truth)[h.index])
    assert np.array_equal(np.asarray(prob.noisy_truth), np.asarray(whole.noisy_truth)[keep])
    assert np.allclose(h.levels, 0.35)
    assert len(h.noisy) == round(0.05 * len(whole.noisy)) == 44  # 5% of 882
    assert "held-out noisy 44" in prob.summary()


def test_per_sample_levels_follow_their_rows() -> None:
    sets = ["data.sigma=null", "data.sigma_range=[0.1, 0.8]"]
    whole = load_problem(_cfg(*sets, "eval.noisy_holdout=0"))
    prob = load_problem(_cfg(*sets))
    keep = np.setdiff1d(np.arange(len(whole.noisy)), prob.holdout.index)
    assert np.array_equal(prob.corruption.sigma, whole.corruption.sigma[keep])
    assert np.array_equal(prob.holdout.levels, whole.corruption.sigma[prob.holdout.index])


class _NoGaussianSpace(WhiteGaussian):
    def white_levels(self, index: np.ndarray) -> None:
        return None


def test_a_model_without_gaussian_space_keeps_every_noisy_sample() -> None:
    prob = load_problem(_cfg("eval.noisy_holdout=0"))
    prob.corruption = _NoGaussianSpace(0.35)
    assert hold_out_noisy(prob, _cfg()) is prob  # nothing held out: no val_noisy


def test_holding_out_everything_is_refused() -> None:
    prob = load_problem(_cfg("eval.noisy_holdout=0"))
    prob.noisy = prob.noisy[:2]
    with pytest.raises(DataError, match="holds out every one of the 2 noisy samples"):
        hold_out_noisy(prob, _cfg("eval.noisy_holdout=0.9"))


@pytest.mark.parametrize("method", ["sfbd", "online-sfbd"])
def test_held_out_samples_are_never_denoised_or_banked(tmp_path, method) -> None:
    sets = [*RING8_TINY, "eval.noisy_holdout=0.05", "train.pretrain_steps=20"]
    sets += ["train.update_steps=10", f"method={method}"]
    sets += ["sfbd.iterations=1", "eval.num_samples=100", "sample.steps=8", "device=cpu"]
    sets += ["online.refresh_every=5", "train.batch_size=32"]
    done = sfbd_run(tmp_path, sets)
    assert done.returncode == 0, done.stderr
    stages = json.loads((tmp_path / "metrics.json").read_text())["stages"]
    assert all("val_noisy" in s["metrics"] and "copy_rate" in s["metrics"] for s in stages)
    prob = load_problem(load_config(overrides=sets))
    start = [json.loads(li) for li in (tmp_path / "log.jsonl").read_text().splitlines()][0]
    assert start["noisy"] == len(prob.noisy) == 855 - len(prob.holdout.noisy)  # 855 - 43
    if method == "sfbd":  # E_1 holds one sample per training noisy sample, none held out
        shards = sorted((tmp_path / "denoised" / "E_01").glob("shard-*.npz"))
        n = sum(len(np.load(p)["x"]) for p in shards)
        assert n == len(prob.noisy)
