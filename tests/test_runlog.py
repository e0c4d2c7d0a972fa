import json

import numpy as np

from sfbd.io.runlog import RunLog


def test_jsonl_records(tmp_path):
    log = RunLog(tmp_path, tensorboard=False)
    log.scalar("train/loss", 0.5, 10)
    log.event("stage", iteration=0, metrics={"swd": 0.1})
    log.image("samples", np.zeros((4, 4, 3), np.uint8), 0)  # TensorBoard only: no JSON line
    log.close()
    lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["event"] for r in lines] == ["scalar", "stage"]
    assert lines[0]["tag"] == "train/loss" and lines[0]["value"] == 0.5 and lines[0]["step"] == 10
    assert lines[1]["metrics"] == {"swd": 0.1}


def test_tensorboard_receives_scalars_and_images_when_installed(tmp_path, monkeypatch):
    import sys
    import types

    calls = []

    class FakeWriter:
        def __init__(self, logdir):
            calls.append(("init", logdir))

        def add_scalar(self, tag, value, step):
            calls.append(("scalar", tag, value, step))

        def add_image(self, tag, img, step, dataformats):
            calls.append(("image", tag, img.shape, step, dataformats))

        def close(self):
            calls.append(("close",))

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    log = RunLog(tmp_path)
    log.scalar("train/loss", 0.25, 3)
    log.image("samples", np.zeros((4, 5, 3), np.uint8), 1)
    log.close()
    assert calls == [
        ("init", str(tmp_path / "tensorboard")),
        ("scalar", "train/loss", 0.25, 3),
        ("image", "samples", (4, 5, 3), 1, "HWC"),
        ("close",),
    ]
