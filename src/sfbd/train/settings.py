"""The settings of one training stage: one typed, immutable object for the loop.

:class:`TrainSettings` gathers what :func:`sfbd.train.loop.train_stage` needs besides the
state, the data, the EMA rule and the hooks: the stage's length and seed, the batch and its
micro-batches, the learning rate and its warm-up, the logging and checkpoint intervals, the
non-finite-step tolerance, the fast-path switches and the loss reduction.
:meth:`TrainSettings.from_config` builds it from a config's ``train`` section, the stage's step
count and seed and the resolved fast path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sfbd.runtime.fast import FastPath
    from sfbd.schema import TrainConfig

__all__ = ["TrainSettings"]


@dataclass(frozen=True)
class TrainSettings:
    """How one stage trains (see :func:`sfbd.train.loop.train_stage`)."""

    steps: int  # optimizer steps of the stage (skipped ones included)
    batch_size: int  # global batch: samples per step over all ranks
    lr: float  # Adam's learning rate after the warm-up
    seed: int  # the stage's batch/noise generator; dropout: seed + rank
    lr_warmup: int = 0  # linear warm-up over the first steps of the run (global step); 0: none
    log_every: int = 100  # steps between log(step, mean loss, skipped) calls
    checkpoint_every: int = 0  # steps between checkpoint(progress) calls; 0: never
    max_skipped: int = 50  # consecutive non-finite steps that stop the run with an error
    micro_batch: int | None = None  # most samples per forward pass per rank; None: the share
    bf16: bool = False  # forward pass under bfloat16 autocast (weights stay float32)
    channels_last: bool = False  # NHWC inputs (for networks converted to channels_last)
    stop_sync_every: int = 25  # DDP: steps between the ranks' agreements on a stop request
    #                            (one host synchronisation each)
    loss_reduction: str = "mean"  # 'sum': gradients of the loss summed over a sample's D
    #                               elements (EDM's), D times those of 'mean'
    desc: str = "train"  # the progress bar's and the error messages' label
    progress: bool = True  # show a progress bar

    @classmethod
    def from_config(
        cls,
        train: TrainConfig,
        *,
        steps: int,
        seed: int,
        fp: FastPath,
        desc: str = "train",
        progress: bool = True,
    ) -> TrainSettings:
        """A stage of ``steps`` steps seeded by ``seed``, as ``train`` (``cfg.train``) and the
        resolved fast path ``fp`` (bf16, channels_last) say."""
        return cls(
            steps=steps,
            batch_size=train.batch_size,
            lr=train.lr,
            seed=seed,
            lr_warmup=train.lr_warmup,
            log_every=train.log_every,
            checkpoint_every=train.checkpoint_every,
            max_skipped=train.max_skipped,
            micro_batch=train.micro_batch,
            bf16=fp.bf16,
            channels_last=fp.channels_last,
            loss_reduction=train.loss_reduction,
            desc=desc,
            progress=progress,
        )

    @property
    def tail(self) -> int:
        """Steps at the end of the stage whose mean loss is returned: the last 10% (at least 1)."""
        return max(1, self.steps // 10)

    def lr_at(self, step: int) -> float:
        """The learning rate of the optimizer step after ``step`` steps of the whole run:
        ``lr * min(1, (step + 1) / lr_warmup)`` during the warm-up, ``lr`` after it."""
        if self.lr_warmup > 0:
            return self.lr * min(1.0, (step + 1) / self.lr_warmup)
        return self.lr

    def loss_scale(self, sample_size: int) -> float:
        """Factor of the per-element mean loss whose gradient is taken: ``D`` (a sample's
        element count) for the 'sum' reduction, 1 for 'mean'."""
        return float(sample_size) if self.loss_reduction == "sum" else 1.0
