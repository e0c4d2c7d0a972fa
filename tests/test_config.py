import pytest
import yaml

from sfbd.config import _all_keys, dump_yaml, load_config, parse_override
from sfbd.errors import ConfigError

SRC = ["data.source=ring8"]


def test_defaults_need_data():
    with pytest.raises(ConfigError, match="no data"):
        load_config()


def test_overrides_are_typed():
    cfg = load_config(overrides=[*SRC, "data.sigma=0.5", "sfbd.iterations=4", "train.lr=1e-4"])
    assert cfg.data.sigma == 0.5 and cfg.sfbd.iterations == 4 and cfg.train.lr == 1e-4
    cfg = load_config(overrides=[*SRC, "data.sigma=1", "model.channel_mult=[1, 2, 2]"])
    assert isinstance(cfg.data.sigma, float) and cfg.model.channel_mult == [1, 2, 2]


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'data.sigma'"):
        load_config(overrides=[*SRC, "data.sigmaa=0.5"])
    with pytest.raises(ConfigError, match="unknown configuration key 'zzz'"):
        load_config(overrides=[*SRC, "zzz=1"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("sfbd.iterations=two", "sfbd.iterations must be an integer"),
        ("sfbd.iterations=1.5", "must be an integer"),
        ("data.sigma=abc", "data.sigma as a file of per-sample levels is for user mode"),
        ("model.attention=3", "true or false"),
        ("data.sigma=0", "data.sigma must be a positive"),
        ("data.sigma=-1", "data.sigma must be a positive"),
        ("data.sigma=.nan", "data.sigma must be a positive"),
        ("data.clean_fraction=1.5", "clean_fraction"),
        ("data.clean_fraction=0", "clean_fraction"),
        ("method=magic", "method must be one of"),
        ("sample.sampler=euler", "sample.sampler"),
        ("sample.steps=1", "sample.steps"),
        ("device=tpu", "device must be"),
    ],
)
def test_bad_values(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[*SRC, override])


def test_clean_fraction_zero_allowed_for_noisy_only():
    cfg = load_config(overrides=[*SRC, "data.clean_fraction=0", "method=noisy-only"])
    assert cfg.data.clean_fraction == 0


def test_modes_are_exclusive_and_complete():
    with pytest.raises(ConfigError, match="either data.source"):
        load_config(overrides=[*SRC, "data.noisy=a.npy", "data.clean=b.npy"])
    with pytest.raises(ConfigError, match="needs data.clean"):
        load_config(overrides=["data.noisy=a.npy", "data.sigma=0.3"])
    with pytest.raises(ConfigError, match="oracle needs benchmark"):
        load_config(
            overrides=["data.noisy=a.npy", "data.clean=b.npy", "method=oracle", "data.sigma=0.3"]
        )


def test_yaml_file_and_errors(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("method: clean-only\ndata:\n  source: ring8\n  sigma: 0.2\n")
    cfg = load_config(p, ["data.sigma=0.3"])
    assert cfg.method == "clean-only" and cfg.data.sigma == 0.3  # --set wins over the file
    p.write_text("data:\n  sourse: ring8\n")
    with pytest.raises(ConfigError, match="did you mean 'data.source'"):
        load_config(p)
    p.write_text("data: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_dump_round_trips(tmp_path):
    cfg = load_config(overrides=[*SRC, "data.sigma=0.25", "model.channel_mult=[1, 2, 4]"])
    p = tmp_path / "r.yaml"
    p.write_text(dump_yaml(cfg))
    assert load_config(p) == cfg


def test_parse_override():
    assert parse_override("a.b=null") == ("a.b", None)
    assert parse_override("a=x.npy") == ("a", "x.npy")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("novalue")
    assert "data.sigma" in _all_keys() and "sfbd.iterations" in _all_keys()


def _message(overrides=(), path=None) -> str:
    """The one-line ConfigError message of a configuration that must be refused."""
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides))
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("data.sigma=.inf", "data.sigma must be a positive number (the noise std), got inf"),
        ("data.sigma=-.inf", "data.sigma must be a positive number"),
        ("data.sigma=nan", "data.sigma must be a positive number (the noise std), got nan"),
        ("data.sigma=null", "data.sigma is null but no other noise model is set"),
        ("data.sigma=[0.1]", "data.sigma must be a number or a string, got [0.1]"),
        ("data.sigma=true", "data.sigma must be a number or a string, got True"),
        ("data.clean_fraction=1", "data.clean_fraction must be in [0, 1)"),
        ("data.clean_fraction=-0.1", "data.clean_fraction must be in [0, 1)"),
        ("data.clean_fraction=.nan", "data.clean_fraction must be in [0, 1)"),
        ("train.batch_size=abc", "train.batch_size must be an integer, got 'abc'"),
        ("train.batch_size=64.0", "train.batch_size must be an integer, got 64.0"),
        ("model.channel_mult=[1, a]", "model.channel_mult must be an integer, got 'a'"),
        ("model.channel_mult=2", "model.channel_mult must be a list of int, got 2"),
        ("data.root=5", "data.root must be a string, got 5"),
        ('data.root=""', "data.root is an empty string; give a path, or null"),
        ("device=cudax", "device must be auto, cpu, cuda or cuda:N, got 'cudax'"),
        ("data=5", "data is a section, not a key; set one of its keys, e.g. --set data.source="),
        ("data.sigma=[1, 2", "--set data.sigma: cannot parse value '[1, 2' as YAML (line"),
        ("data.source.x=1", "unknown configuration key 'data.source.x'; did you mean"),
    ],
)
def test_bad_values_have_one_line_messages(override, fragment):
    assert fragment in _message([*SRC, override])


def test_clean_fraction_zero_needs_a_method_without_clean_data_or_pretrain():
    msg = _message([*SRC, "data.clean_fraction=0"])
    assert msg == (
        "data.clean_fraction 0 leaves no clean samples for pretraining; set "
        "data.clean_fraction > 0 or data.pretrain (clean samples of a similar dataset)"
    )
    msg = _message([*SRC, "data.clean_fraction=0", "method=clean-only"])
    assert "leaves no clean samples for method clean-only" in msg
    for extra in (["method=oracle"], ["data.pretrain=checkerboard"]):
        cfg = load_config(overrides=[*SRC, "data.clean_fraction=0", *extra])
        assert cfg.data.clean_fraction == 0
    cfg = load_config(
        overrides=[*SRC, "data.clean_fraction=0", "method=clean-only", "data.pretrain=x.npy"]
    )
    assert cfg.data.pretrain == "x.npy"


def test_user_mode_needs_clean_or_pretrain_samples():
    msg = _message(["data.noisy=a.npy", "data.sigma=0.3"])
    assert msg.startswith("method sfbd needs data.clean (clean samples of the same distribution)")
    assert "or data.pretrain" in msg
    cfg = load_config(overrides=["data.noisy=a.npy", "data.pretrain=p.npy", "data.sigma=0.3"])
    assert cfg.data.clean is None and cfg.data.pretrain == "p.npy"
    assert "method noisy-only needs data.noisy" in _message(
        ["data.clean=b.npy", "method=noisy-only"]
    )
    assert load_config(overrides=["data.clean=b.npy", "method=clean-only"]).data.noisy is None


def test_pretrain_must_differ_from_the_run_data(tmp_path):
    msg = _message(["data.source=digits", "data.pretrain=digits"])
    assert msg.startswith("data.pretrain is the same data as data.source ('digits')")
    # a 2-D builtin as pretrain is an independent draw, so it may equal data.source
    assert load_config(overrides=[*SRC, "data.pretrain=ring8"]).data.pretrain == "ring8"
    f = tmp_path / "a.npy"
    same = f"{tmp_path}/./a.npy"
    assert "same data as data.source" in _message([f"data.source={f}", f"data.pretrain={same}"])
    assert "same data as eval.reference" in _message(
        [*SRC, f"eval.reference={f}", f"data.pretrain={f}"]
    )
    assert "same data as data.clean" in _message(
        ["data.noisy=n.npy", f"data.clean={f}", f"data.pretrain={f}", "data.sigma=0.3"]
    )
    assert "same data as data.noisy" in _message(
        [f"data.noisy={f}", "data.clean=c.npy", f"data.pretrain={f}", "data.sigma=0.3"]
    )


def test_config_file_errors_are_one_line(tmp_path, monkeypatch):
    p = tmp_path / "c.yaml"
    p.write_text("- data\n- method\n")
    assert _message(path=p) == (
        f"config file {str(p)!r} must hold a mapping of keys (like configs/ring8.yaml), "
        "got list ['data', 'method']"
    )
    p.write_text("just text\n")
    assert "must hold a mapping of keys" in _message(path=p)
    p.write_text("data: 5\n")
    assert _message(path=p).startswith("data must be a mapping of its keys (e.g. data.source)")
    p.write_text("data:\n  source: ring8\n  sigma: [0.1\nmethod: sfbd\n")
    msg = _message(path=p)
    assert msg.startswith(f"config file {str(p)!r} is not valid YAML (line ")
    assert msg.endswith("compare it with configs/ring8.yaml")
    p.write_text("data:\n  source: ring8\n sigma: 0.1\n")  # bad indentation
    assert "is not valid YAML (line 3" in _message(path=p)
    p.write_bytes(b"method: \xff\xfe\n")
    assert "is not UTF-8 text" in _message(path=p)
    assert "is a directory; give the path of a YAML file" in _message(path=tmp_path)
    p.write_text("")
    assert "no data" in _message(path=p)  # an empty file is an empty mapping

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    p.write_text("method: sfbd\n")
    monkeypatch.setattr(type(p), "read_text", denied)
    assert _message(path=p) == (
        f"cannot read config file {str(p)!r}: Permission denied; check its permissions"
    )


def test_fast_switches_accept_on_off_auto_and_booleans():
    cfg = load_config(
        overrides=["data.source=ring8", "fast.bf16=on", "fast.compile=off", "fast.fused_adam=true"]
    )
    assert (cfg.fast.bf16, cfg.fast.compile, cfg.fast.fused_adam) == ("on", "off", "on")
    assert cfg.fast.channels_last == "auto"
    with pytest.raises(ConfigError, match="fast.bf16 must be one of auto, on, off"):
        load_config(overrides=["data.source=ring8", "fast.bf16=fast"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("online.refresh_every=0", "online.refresh_every must be >= 1"),
        ("online.refresh_size=0", "online.refresh_size must be >= 1 or null"),
        ("online.ramp=1.5", r"online.ramp must be in \[0, 1\]"),
        ("train.loss_reduction=median", "train.loss_reduction must be mean or sum"),
        (
            "method=online",
            "method must be one of sfbd, online-sfbd, clean-only, noisy-only, oracle, ambient; "
            "got 'online'",
        ),
    ],
)
def test_online_and_reduction_keys_are_checked(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=["data.source=ring8", override])


def test_user_mode_noisy_files_need_their_noise_level(tmp_path):
    """The benchmark default data.sigma=0.35 is never a user's noise level by accident."""
    files = ["data.noisy=a.npy", "data.clean=b.npy"]
    msg = _message(files)
    assert msg.startswith("data.noisy is given but data.sigma is not") and "0.35" in msg
    assert load_config(overrides=[*files, "data.sigma=0.35"]).data.sigma == 0.35  # said so
    (tmp_path / "u.yaml").write_text("data:\n  noisy: a.npy\n  clean: b.npy\n  sigma: 0.2\n")
    assert load_config(tmp_path / "u.yaml").data.sigma == 0.2
    coloured = load_config(overrides=[*files, "data.sigma=null", "data.noise_cov=c.npy"])
    assert coloured.data.noise == "coloured"
    # no noisy files, no level needed; a resolved config.yaml (the run's own) gives it
    assert load_config(overrides=["data.clean=b.npy", "method=clean-only"]).data.noisy is None
    cfg = load_config(overrides=[*files, "data.sigma=0.3"])
    assert load_config(base=yaml.safe_load(dump_yaml(cfg))) == cfg
