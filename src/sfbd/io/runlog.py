"""The run's log: a JSON-lines file always, TensorBoard too when it is installed.

``DIR/log.jsonl`` gets one JSON object per event (training losses every ``train.log_every``
steps, stage summaries), so curves can be read without extra software. When the optional
``tensorboard`` package is importable, scalars and images also go to ``DIR/tensorboard``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np


class RunLog:
    """Append-only event log of one run directory."""

    def __init__(self, out: Path, *, tensorboard: bool = True) -> None:
        self.path = out / "log.jsonl"
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # the optional extra is not installed
                pass
            else:
                self.writer = SummaryWriter(str(out / "tensorboard"))

    def event(self, kind: str, **fields: Any) -> None:
        """Append {"time", "event": kind, **fields} as one line."""
        record = {"time": round(time.time(), 3), "event": kind, **fields}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.event("scalar", tag=tag, value=value, step=step)
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def image(self, tag: str, image_hwc: np.ndarray, step: int) -> None:
        """An (H, W, C) uint8 picture (TensorBoard only; PNGs are written separately)."""
        if self.writer is not None:
            self.writer.add_image(tag, image_hwc, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
