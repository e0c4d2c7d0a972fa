"""The console script's exit path (sfbd.cli.entry)."""

from __future__ import annotations

import pytest

from sfbd.cli import entry


@pytest.mark.parametrize(
    ("outcome", "code", "said"),
    [
        (4, 4, ""),
        (SystemExit(2), 2, ""),
        (SystemExit("usage: bad"), 1, "usage: bad"),
        (SystemExit(None), 0, ""),
        (RuntimeError("boom"), 1, "RuntimeError: boom"),
    ],
)
def test_every_outcome_leaves_with_its_status(monkeypatch, capsys, outcome, code, said):
    import sfbd.cli.main as cli

    def fake_main():
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(cli, "main", fake_main)
    with pytest.raises(SystemExit) as exc:  # no process group here: leave() is sys.exit
        entry.main()
    assert exc.value.code == code
    assert said in capsys.readouterr().err
