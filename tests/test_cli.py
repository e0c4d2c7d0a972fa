import subprocess
import sys

import numpy as np
import pytest

from sfbd.cli import main

GAUSS_RUN = [
    "--set", "data.source=ring8",
    "--set", "data.num_samples=600",
    "--set", "data.clean_fraction=0.1",
    "--set", "model.kind=gaussian",
    "--set", "sfbd.iterations=1",
    "--set", "eval.num_samples=100",
]  # fmt: skip


def _error(capsys, argv, fragment):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("sfbd: error: ") and "\n" not in err, err
    assert fragment in err, err
    return err


@pytest.fixture(scope="module")
def gauss_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["run", "--out", str(out), "--quiet", *GAUSS_RUN]) == 0
    return out


def test_run_errors_are_one_line(capsys, tmp_path):
    out = ["--out", str(tmp_path / "r")]
    _error(capsys, ["run", *out, "--set", "data.sigmaa=1"], "did you mean 'data.sigma'")
    _error(
        capsys,
        ["run", *out, "--set", "data.source=ring8", "--set", "sfbd.iterations=x"],
        "sfbd.iterations must be an integer",
    )
    _error(
        capsys,
        ["run", *out, "--set", "data.source=ring8", "--set", "data.sigma=0"],
        "data.sigma must be a positive number",
    )
    _error(
        capsys,
        ["run", *out, "--set", "data.source=ring8", "--set", "data.sigma=-0.3"],
        "data.sigma must be a positive number",
    )
    _error(capsys, ["run", str(tmp_path / "nope.yaml"), *out], "not found")
    _error(
        capsys,
        ["run", *out, "--set", f"data.source={tmp_path / 'missing.npy'}"],
        "data.source file",
    )
    assert not (tmp_path / "r").exists()  # nothing half-written


def test_mismatched_shapes_leave_nothing_behind(capsys, tmp_path):
    np.save(tmp_path / "noisy.npy", np.zeros((20, 2), np.float32))
    np.save(tmp_path / "clean.npy", np.zeros((5, 3), np.float32))
    argv = [
        "run",
        "--out",
        str(tmp_path / "r"),
        "--set",
        f"data.noisy={tmp_path / 'noisy.npy'}",
        "--set",
        f"data.clean={tmp_path / 'clean.npy'}",
        "--set",
        "data.sigma=0.5",
    ]
    _error(capsys, argv, "clean samples have shape (3,) but noisy samples have (2,)")
    assert not (tmp_path / "r").exists()


def test_print_config(capsys):
    assert main(["run", "--out", "x", "--print-config", "--set", "data.source=ring8"]) == 0
    assert "source: ring8" in capsys.readouterr().out


def test_sample_writes_the_data_shape(gauss_run, tmp_path, capsys):
    out = tmp_path / "s.npy"
    assert main(["sample", "--run", str(gauss_run), "--n", "50", "--out", str(out), "--quiet"]) == 0
    x = np.load(out)
    assert x.shape == (50, 2) and x.dtype == np.float32
    # default seed is the run's: same command, same samples; another seed differs
    out2 = tmp_path / "s2.npy"
    main(["sample", "--run", str(gauss_run), "--n", "50", "--out", str(out2), "--quiet"])
    assert np.array_equal(np.load(out2), x)
    main(
        [
            "sample",
            "--run",
            str(gauss_run),
            "--n",
            "50",
            "--out",
            str(out2),
            "--seed",
            "5",
            "--quiet",
            "--stage",
            "0",
        ]
    )
    assert not np.array_equal(np.load(out2), x)
    _error(
        capsys,
        ["sample", "--run", str(gauss_run), "--n", "5", "--out", str(out), "--stage", "7"],
        "stage 7 is not finished",
    )
    _error(
        capsys,
        ["sample", "--run", str(tmp_path), "--n", "5", "--out", str(out)],
        "not a run directory",
    )
    _error(
        capsys,
        ["sample", "--run", str(gauss_run), "--n", "5", "--out", str(tmp_path / "a.txt")],
        "--out must name a .npy file",
    )


def test_denoise_in_input_order(gauss_run, tmp_path, capsys):
    y = np.random.default_rng(0).standard_normal((30, 2)).astype(np.float32)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "d.npy"
    base = ["denoise", "--run", str(gauss_run), "--sigma", "0.3", "--quiet"]
    assert main([*base, "--input", str(tmp_path / "y.npy"), "--out", str(out)]) == 0
    x = np.load(out)
    assert x.shape == y.shape and not np.allclose(x, y)
    np.save(tmp_path / "head.npy", y[:10])
    main([*base, "--input", str(tmp_path / "head.npy"), "--out", str(tmp_path / "h.npy")])
    assert np.array_equal(np.load(tmp_path / "h.npy"), x[:10])
    np.save(tmp_path / "bad.npy", np.zeros((3, 5), np.float32))
    _error(
        capsys,
        [*base, "--input", str(tmp_path / "bad.npy"), "--out", str(out)],
        "--input samples have shape (5,) but the model was trained on (2,)",
    )
    _error(
        capsys,
        [
            "denoise",
            "--run",
            str(gauss_run),
            "--sigma",
            "0",
            "--input",
            str(tmp_path / "y.npy"),
            "--out",
            str(out),
        ],
        "--sigma must be a positive",
    )
    _error(
        capsys,
        [
            "denoise",
            "--run",
            str(gauss_run),
            "--sigma",
            "0.3",
            "--input",
            str(tmp_path / "none.npy"),
            "--out",
            str(out),
        ],
        "--input file",
    )


def test_uint8_images_round_trip_in_their_own_scale(tmp_path):
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, size=(40, 1, 8, 8), dtype=np.uint8)
    noisy = rng.integers(0, 256, size=(60, 1, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "c.npy", clean)
    np.save(tmp_path / "n.npy", noisy)
    run = tmp_path / "run"
    argv = [
        "run",
        "--out",
        str(run),
        "--quiet",
        "--set",
        f"data.noisy={tmp_path / 'n.npy'}",
        "--set",
        f"data.clean={tmp_path / 'c.npy'}",
        "--set",
        "data.sigma=0.5",
        "--set",
        "model.channels=8",
        "--set",
        "train.pretrain_steps=2",
        "--set",
        "train.update_steps=2",
        "--set",
        "train.batch_size=8",
        "--set",
        "sfbd.iterations=1",
        "--set",
        "eval.num_samples=4",
        "--set",
        "sample.steps=4",
    ]
    assert main(argv) == 0
    assert (
        main(
            [
                "sample",
                "--run",
                str(run),
                "--n",
                "3",
                "--out",
                str(tmp_path / "s.npy"),
                "--quiet",
                "--steps",
                "4",
            ]
        )
        == 0
    )
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (3, 1, 8, 8) and s.dtype == np.uint8


def test_console_entry_point_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sfbd.cli", "run", "--out", str(tmp_path), "--set", "nope=1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "sfbd: error: unknown configuration key 'nope'; see the configuration reference"
    ]


def test_fid_stats_and_fid_commands(tmp_path, capsys):
    import torch
    from PIL import Image

    from sfbd.metrics.inception import FIDInceptionV3

    torch.manual_seed(0)
    net = FIDInceptionV3()
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    weights = tmp_path / "w.pth"
    torch.save(net.state_dict(), weights)
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    stats = tmp_path / "ref.npz"
    base = ["--inception", str(weights), "--device", "cpu", "--quiet"]
    assert main(["fid-stats", str(folder), "--out", str(stats), *base]) == 0
    with np.load(stats) as f:
        assert f["mu"].shape == (2048,) and f["sigma"].shape == (2048, 2048)
    capsys.readouterr()
    assert main(["fid", "--input", str(folder), "--stats", str(stats), *base]) == 0
    assert abs(float(capsys.readouterr().out)) < 1e-3  # the same images: FID 0
    _error(
        capsys,
        ["fid-stats", str(folder), "--out", str(tmp_path / "x.txt"), *base],
        "--out must name a .npz file",
    )
    np.save(tmp_path / "vec.npy", np.zeros((4, 2), np.float32))
    _error(
        capsys,
        ["fid", "--input", str(tmp_path / "vec.npy"), "--stats", str(stats), *base],
        "FID needs images",
    )
