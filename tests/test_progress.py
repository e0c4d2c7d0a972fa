"""sfbd.runtime.progress: nested bars only on a terminal (no cursor escapes in piped output)."""

from __future__ import annotations

import io
import sys

import torch
from tqdm.auto import tqdm

from sfbd.diffusion.batched import denoise_all
from sfbd.diffusion.schedule import edm_sigmas
from sfbd.nets.gaussian import GaussianDenoiser
from sfbd.noise import WhiteGaussian
from sfbd.runtime.progress import bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_nested_bar_is_shown_only_on_a_terminal() -> None:
    piped, term = io.StringIO(), _Terminal()
    with bar(total=3, desc="alone", file=piped) as alone:
        assert not alone.disable  # one bar: shown wherever it writes
        with bar(total=3, desc="inner", file=piped) as inner:
            assert inner.disable
        with bar(total=3, desc="inner", file=term) as inner:
            assert not inner.disable
    with bar(total=3, desc="off", progress=False, file=term) as off:
        assert off.disable


def test_denoising_inside_a_training_bar_writes_no_cursor_escapes(capsys) -> None:
    den = GaussianDenoiser((2,))
    den.set_moments(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    y = torch.randn(64, 2, dtype=torch.float64)
    with tqdm(total=10, desc="train", file=sys.stderr) as outer:  # captured: not a terminal
        x = denoise_all(den, y, WhiteGaussian(0.5), edm_sigmas(8, dtype=torch.float64),
                        stream=1, sampler="heun", batch_size=16, progress=True)  # fmt: skip
        outer.update(10)
    assert x.shape == y.shape
    err = capsys.readouterr().err  # piped output: what a log file or `| tee` sees
    assert "train" in err and "\x1b[A" not in err
