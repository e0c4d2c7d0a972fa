from pathlib import Path

from sfbd.io.manifest import Manifest


def test_records_and_detects_missing_resized_and_altered_files(tmp_path: Path):
    (tmp_path / "a.bin").write_bytes(b"abcdef")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(b"123")
    m = Manifest(tmp_path)
    m.record(0, [tmp_path / "a.bin", Path("sub/b.bin")])
    m.record(1, [tmp_path / "sub" / "b.bin"])
    again = Manifest(tmp_path)  # read back from manifest.json
    assert again.problems(0) == [] and again.problems(1) == []
    assert again.problems(2) == ["stage 2 is not in manifest.json"]
    (tmp_path / "a.bin").write_bytes(b"abcdeX")  # same size, other bytes
    assert again.problems(0) == ["a.bin does not match its SHA-256 checksum"]
    (tmp_path / "a.bin").write_bytes(b"abc")
    assert again.problems(0) == ["a.bin has 3 bytes, expected 6"]
    (tmp_path / "sub" / "b.bin").unlink()
    assert again.problems(1) == ["sub/b.bin is missing"]
    again.forget(1)
    assert set(Manifest(tmp_path).stages) == {"0"}


def test_unreadable_manifest_trusts_nothing(tmp_path: Path):
    (tmp_path / "manifest.json").write_text("{not json")
    assert Manifest(tmp_path).problems(0) == ["stage 0 is not in manifest.json"]


def test_a_relative_run_directory_works(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run" / "c").mkdir(parents=True)
    (tmp_path / "run" / "c" / "x.bin").write_bytes(b"xyz")
    m = Manifest(Path("run"))
    m.record(0, [Path("run") / "c" / "x.bin", Path("c/x.bin")])
    assert list(m.stages["0"]) == ["c/x.bin"] and m.problems(0) == []
