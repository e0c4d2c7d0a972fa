import json

import numpy as np

from sfbd.runlog import RunLog


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
