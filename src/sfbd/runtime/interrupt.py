"""Preemption: SIGTERM/SIGINT ask a run to stop at the next safe point.

Cluster schedulers send SIGTERM before they kill a job; users press Ctrl-C. Inside
:func:`stop_on_signals` both only set a flag. Long loops poll :meth:`StopFlag.is_set` (a plain
Python attribute: no device synchronisation), write what they need to resume (a step
checkpoint, the finished denoised shards) and raise :class:`Interrupted`; the CLI then exits
with :data:`EXIT_INTERRUPTED`. A second signal while stopping falls back to the default action.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: "try again later": rerunning the command resumes


class Interrupted(Exception):  # noqa: N818 - a state, not an error
    """A run stopped on request after saving what it needs to resume."""


class StopFlag:
    """Set by a signal (or by hand); polled by the training and sampling loops."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def set(self, signum: int = signal.SIGTERM) -> None:
        self.signal = signum

    def is_set(self) -> bool:
        return self.signal is not None

    def check_agreed(self, requested: bool, where: str) -> None:
        """Stop if ``requested`` (e.g. some other process of the job was signalled), setting
        the flag first so that this process reports and behaves as interrupted too."""
        if requested:
            if self.signal is None:
                self.signal = signal.SIGTERM
            self.check(where)

    def check(self, where: str) -> None:
        """Raise :class:`Interrupted` if a stop was requested."""
        if self.signal is not None:
            name = signal.Signals(self.signal).name
            raise Interrupted(f"stopped by {name} {where}")


NEVER = StopFlag()  # a flag nobody sets, for library calls without signal handling
EARLY = StopFlag()  # the command line's flag, set from process start (see install_early)


def install_early() -> None:
    """Route SIGTERM/SIGINT to :data:`EARLY` at once: the ``sfbd`` entry points call this
    before importing torch, so a job preempted while it starts up still exits with
    :data:`EXIT_INTERRUPTED` rather than dying mid-import."""
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda signum, frame: EARLY.set(signum))


@contextmanager
def stop_on_signals(flag: StopFlag) -> Iterator[StopFlag]:
    """Route SIGTERM and SIGINT to ``flag`` for the duration (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {s: signal.getsignal(s) for s in signals}

    def handler(signum: int, frame: FrameType | None) -> None:
        if flag.is_set():  # second signal: do not wait any longer
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        flag.set(signum)

    for s in signals:
        signal.signal(s, handler)
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
