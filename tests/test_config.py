import pytest

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
        ("data.sigma=abc", "data.sigma must be a number"),
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
        load_config(overrides=["data.noisy=a.npy"])
    with pytest.raises(ConfigError, match="oracle needs benchmark"):
        load_config(overrides=["data.noisy=a.npy", "data.clean=b.npy", "method=oracle"])


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
