import json

import numpy as np
import pytest
import torch
from PIL import Image

from sfbd.config import load_config
from sfbd.data import load_problem
from sfbd.errors import ConfigError, DataError
from sfbd.metrics.inception import FIDInceptionV3
from sfbd.run.evaluate import check_fid, distances, fid_reference_images
from sfbd.run.runner import Run


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """Weights of the FID Inception architecture (random, seeded): the real file is offline."""
    torch.manual_seed(0)
    model = FIDInceptionV3()
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    path = tmp_path_factory.mktemp("w") / "inception.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """40 tiny RGB PNGs: coloured squares at random places."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(40):
        img = np.zeros((16, 16, 3), np.uint8)
        y, x = rng.integers(0, 10, size=2)
        img[y : y + 6, x : x + 6] = rng.integers(0, 256, size=3)
        Image.fromarray(img).save(root / f"{i:03d}.png")
    return root


def test_image_folder_run_with_augmentation_fid_grids_and_log(
    image_folder, inception_weights, tmp_path
):
    cfg = load_config(
        overrides=[
            f"data.source={image_folder}",
            "data.sigma=0.5",
            "data.clean_fraction=0.2",
            "data.holdout=0.25",
            "model.kind=ddpmpp",
            "model.channels=16",
            "model.channel_mult=[1, 2]",
            "model.blocks_per_level=1",
            "model.attn_resolutions=[8]",
            "train.augment=0.5",
            "train.pretrain_steps=4",
            "train.update_steps=2",
            "train.batch_size=4",
            "train.log_every=2",
            "sfbd.iterations=1",
            "sample.steps=4",
            "eval.num_samples=8",
            "eval.fid=true",
            "eval.fid_samples=6",
            f"eval.inception={inception_weights}",
        ]
    )
    stages = Run(cfg, tmp_path, progress=False).execute()
    assert [s["stage"] for s in stages] == ["pretrain", "update"]
    for s in stages:
        assert np.isfinite(s["metrics"]["fid"]) and s["metrics"]["fid"] > 0
        assert {"swd", "mmd"} <= set(s["metrics"])
    for name in (
        "samples/stage-00.png",
        "samples/stage-01.png",
        "samples/triplets-01.png",
        "stages.png",
        "metrics.png",
        "fid_ref.npz",
    ):
        assert (tmp_path / name).is_file(), name
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    losses = [r for r in records if r.get("tag") == "train/loss"]
    assert [r["step"] for r in losses] == [2, 4, 6]  # every train.log_every steps, global count
    assert sum(r["event"] == "stage" for r in records) == 2
    ck = json.loads((tmp_path / "checkpoints" / "stage-01.json").read_text())
    assert ck["denoiser"]["kind"] == "ddpmpp"  # the model.kind (0.7 recorded its class, songunet)
    assert ck["denoiser"]["config"]["augment_dim"] == 9


def test_digits_run_writes_grids_and_triplets(tmp_path):
    cfg = load_config(
        overrides=[
            "data.source=digits",
            "data.sigma=0.6",
            "data.clean_fraction=0.1",
            "model.channels=8",
            "train.pretrain_steps=3",
            "train.update_steps=2",
            "train.batch_size=16",
            "sfbd.iterations=1",
            "sample.steps=4",
            "eval.num_samples=20",
        ]
    )
    Run(cfg, tmp_path, progress=False).execute()
    with Image.open(tmp_path / "samples" / "triplets-01.png") as im:
        assert im.size[0] > 100
    assert (tmp_path / "samples" / "stage-01.png").is_file()


def test_fid_requests_that_cannot_be_met(tmp_path):
    with pytest.raises(ConfigError, match="needs images"):
        check_fid(
            load_config(overrides=["data.source=ring8", "eval.fid=true"]),
            load_problem(load_config(overrides=["data.source=ring8"])),
        )
    np.save(tmp_path / "n.npy", np.zeros((6, 1, 8, 8), np.float32))
    np.save(tmp_path / "c.npy", np.zeros((3, 1, 8, 8), np.float32))
    user = [f"data.noisy={tmp_path / 'n.npy'}", f"data.clean={tmp_path / 'c.npy'}", "eval.fid=true"]
    user.append("data.sigma=0.35")
    cfg = load_config(overrides=user)
    with pytest.raises(DataError, match="needs eval.reference"):
        check_fid(cfg, load_problem(cfg))
    check_fid(load_config(overrides=[*user, "eval.fid_stats=s.npz"]), load_problem(cfg))


def test_fid_reference_is_the_holdout_or_all_clean_originals():
    with_ref = load_problem(load_config(overrides=["data.source=digits", "data.holdout=0.1"]))
    assert fid_reference_images(with_ref) is with_ref.reference
    no_ref = load_problem(load_config(overrides=["data.source=digits", "data.holdout=0"]))
    assert len(fid_reference_images(no_ref)) == 1797  # the whole clean source, like CIFAR-10's 50k


def test_distances_need_their_inputs():
    cfg = load_config(overrides=["data.source=ring8", "data.num_samples=400"])
    prob = load_problem(cfg)
    out = distances(prob, prob.reference, prob.noisy_truth, cfg)
    assert out["swd"] < 1e-12 and out["denoise_psnr"] == float("inf")
    prob.reference = None
    assert set(distances(prob, prob.noisy_truth, None, cfg)) == set()
