import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from sfbd.cli import main as cli
from sfbd.cli.main import main

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


def _bad_inputs(d):
    """Files for test_bad_inputs_exit_2_and_write_nothing: (name -> path) under ``d``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    np.save(d / "noisy.npy", rng.standard_normal((20, 2)).astype(np.float32))
    np.save(d / "clean.npy", rng.standard_normal((5, 2)).astype(np.float32))
    np.save(d / "nan.npy", np.array([[0.0, np.nan], [1.0, 1.0], [np.inf, 0.0]], np.float32))
    np.save(d / "empty.npy", np.zeros((0, 2), np.float32))
    np.save(d / "vec3.npy", np.zeros((5, 3), np.float32))
    (d / "corrupt.npy").write_bytes(b"\x93NUMPY garbage")
    (d / "folder").mkdir()
    (d / "emptyimgs").mkdir()
    (d / "mixed").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(d / "mixed" / "a.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(d / "mixed" / "b.png")
    (d / "list.yaml").write_text("- method: sfbd\n")
    (d / "broken.yaml").write_text("data:\n  source: ring8\n  sigma: [0.1\n")


def test_bad_inputs_exit_2_and_write_nothing(capsys, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    _bad_inputs(d)
    user = ["--set", f"data.noisy={d / 'noisy.npy'}", "--set", f"data.clean={d / 'clean.npy'}"]
    cases = [
        (
            ["--set", f"data.noisy={d / 'corrupt.npy'}", "--set", f"data.clean={d / 'clean.npy'}"],
            "data.noisy file",
            "is not a valid .npy array file",
        ),
        (
            ["--set", f"data.noisy={d / 'noisy.npy'}", "--set", f"data.clean={d / 'nan.npy'}"],
            "data.clean in ",
            "NaN or infinite values in 2 of 3 samples; remove or repair those samples",
        ),
        (
            ["--set", f"data.noisy={d / 'empty.npy'}", "--set", f"data.clean={d / 'clean.npy'}"],
            "data.noisy in ",
            "is empty (shape (0, 2)): it holds no samples",
        ),
        (
            ["--set", f"data.noisy={d / 'folder'}", "--set", f"data.clean={d / 'clean.npy'}"],
            "data.noisy ",
            "is a folder, not a .npy/.npz file",
        ),
        (
            ["--set", f"data.noisy={d / 'noisy.npy'}", "--set", f"data.clean={d / 'emptyimgs'}"],
            "data.clean ",
            "holds no PNG/JPEG images",
        ),
        (
            ["--set", f"data.source={d / 'mixed'}"],
            "image 'b.png'",
            "is 4x4 L but the first image 'a.png' is 4x4 RGB; all images must have one size",
        ),
        (
            [*user, "--set", f"data.pretrain={d / 'vec3.npy'}"],
            "data.pretrain samples have shape (3,)",
            "but noisy samples have (2,)",
        ),
        (
            ["--set", "data.source=ring8", "--set", "data.clean_fraction=0"],
            "data.clean_fraction 0 leaves no clean samples for pretraining",
            "set data.clean_fraction > 0 or data.pretrain",
        ),
        (
            ["--set", "data.source=ring8", "--set", "data.sigma=.inf"],
            "data.sigma must be a positive number",
            "got inf",
        ),
        (
            ["--set", "data.source=ring8", "--set", "train.batch_size=many"],
            "train.batch_size must be an integer",
            "got 'many'",
        ),
        ([str(d / "list.yaml")], "must hold a mapping of keys", "got list"),
        ([str(d / "broken.yaml")], "is not valid YAML (line ", "configs/ring8.yaml"),
        (["--set", "data.source=ring8", "--max-stages", "-1"], "--max-stages must be >= 0", ""),
    ]
    for i, (argv, fragment, tail) in enumerate(cases):
        out = tmp_path / f"out{i}"
        if any("data.noisy=" in a for a in argv) and not any("data.sigma=" in a for a in argv):
            argv = [*argv, "--set", "data.sigma=0.35"]  # user mode names its noise level
        err = _error(capsys, ["run", "--out", str(out), "--quiet", *argv], fragment)
        assert tail in err, err
        assert not out.exists(), (argv, sorted(out.iterdir()))
    # an existing, empty --out stays empty
    out = tmp_path / "existing"
    out.mkdir()
    _error(capsys, ["run", "--out", str(out), *user, "--set", "data.sigma=0"], "data.sigma")
    _error(
        capsys,
        ["run", "--out", str(out), "--set", f"data.noisy={d / 'noisy.npy'}", "--set",
         f"data.clean={d / 'vec3.npy'}", "--set", "data.sigma=0.35"],
        "clean samples have shape (3,) but noisy samples have (2,)",
    )  # fmt: skip
    assert list(out.iterdir()) == []


def test_dry_run_checks_the_pretrain_shape(capsys, tmp_path):
    out = tmp_path / "r"
    base = ["run", "--out", str(out), "--dry-run", "--set", "data.source=ring8"]
    _error(
        capsys,
        [*base, "--set", "data.pretrain=digits"],
        "data.pretrain samples have shape (1, 8, 8) but noisy samples have (2,)",
    )
    np.save(tmp_path / "p.npy", np.zeros((4, 3), np.float32))
    _error(
        capsys,
        [*base, "--set", f"data.pretrain={tmp_path / 'p.npy'}"],
        "data.pretrain samples have shape (3,) but noisy samples have (2,)",
    )
    np.save(tmp_path / "p.npy", np.zeros((4, 2), np.float32))
    assert main([*base, "--set", f"data.pretrain={tmp_path / 'p.npy'}"]) == 0
    assert '"data_shape": [\n  2\n ]' in capsys.readouterr().out
    assert not out.exists()


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
    np.save(tmp_path / "c.npy", clean)  # uint8 noisy data are refused (test_problem.py)
    run = tmp_path / "run"
    argv = [
        "run",
        "--out",
        str(run),
        "--quiet",
        "--set",
        f"data.clean={tmp_path / 'c.npy'}",
        "--set",
        "method=clean-only",
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


def test_sfbd_warnings_print_as_one_line_and_others_pass_through(capsys):
    seen = []
    show = cli._warning_line(lambda *a: seen.append(a))
    inside = str(Path(cli.__file__).parent.parent / "data" / "images.py")
    out = io.StringIO()
    show(UserWarning("copy differs"), UserWarning, inside, 12, out)
    assert out.getvalue() == "sfbd: warning: copy differs\n" and seen == []
    show(UserWarning("x"), UserWarning, "/elsewhere/lib.py", 3)
    assert len(seen) == 1 and seen[0][2] == "/elsewhere/lib.py"
    show(UserWarning("to stderr"), UserWarning, inside, 12)
    assert capsys.readouterr().err == "sfbd: warning: to stderr\n"


def test_set_takes_several_pairs(capsys, tmp_path):
    # the form people type: several pairs after one --set (DESIGN.md's `--set key=value ...`)
    argv = ["run", "--out", str(tmp_path / "r"), "--print-config"]
    argv += ["--set", "data.source=ring8", "data.sigma=0.5", "--set", "sfbd.iterations=1"]
    assert main(argv) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["data"]["source"] == "ring8" and cfg["data"]["sigma"] == 0.5
    assert cfg["sfbd"]["iterations"] == 1


def test_set_names_the_expected_form(capsys, tmp_path):
    out = ["--out", str(tmp_path / "r")]
    _error(capsys, ["run", *out, "--set", "data.source=ring8", "sigma"], "--set expects key=value")
    # a YAML path among the overrides is not taken as the configuration: say where it goes
    err = _error(capsys, ["run", *out, "--set", "data.sigma=0.5", "configs/ring8.yaml"], "got")
    assert "configuration file is the positional argument" in err
    assert "sfbd run configs/ring8.yaml --out DIR" in err


def test_cache_lists_and_clears_the_converted_inputs(capsys, tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((4, 4, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    from sfbd.data import load_array

    load_array(folder, cache_dir=tmp_path / "c")
    assert main(["cache", "--dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "images-" in out and "1 cache(s)" in out
    assert main(["cache", "--dir", str(tmp_path / "c"), "--clear"]) == 0
    assert "cleared" in capsys.readouterr().out
    assert not list((tmp_path / "c").glob("*.npy"))
    assert main(["cache", "--dir", str(tmp_path / "c")]) == 0
    assert "0 cache(s), 0.0 MiB" in capsys.readouterr().out
