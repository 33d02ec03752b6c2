"""Progress reporting without drawing: library code calls back, the caller decides what to show.

A long step (verifying, fingerprinting, preprocessing, an epoch, validation) takes a
:class:`Progress`, or None for silence, and starts one :class:`ProgressBar` per loop. The command
line and the API's ``progress=True`` pass :func:`swinfuse_auto.api.progress.tqdm_progress`,
which draws tqdm bars; a service can pass its own and forward the counts anywhere. Library code
itself never draws and never prints (sliding-window prediction reports through a
``progress(done, total)`` callback in the same spirit).
"""

from __future__ import annotations

from typing import Protocol


class ProgressBar(Protocol):
    """One loop's progress, as reported by the library."""

    def advance(self, steps: int = 1) -> None:
        """``steps`` more items are done."""

    def status(self, text: str) -> None:
        """A short status of the current item (e.g. the running loss)."""

    def close(self) -> None:
        """The loop is over (finished or left by an exception)."""


class Progress(Protocol):
    """Starts a :class:`ProgressBar`.

    Args:
        title: what the loop does ("preprocess", "epoch 3").
        total: the number of items, None when unknown.
        unit: what one item is ("case", "step").
        transient: the bar means nothing once the loop is over (an epoch's steps).
    """

    def __call__(self, title: str, total: int | None, unit: str = "it",
                 transient: bool = False) -> ProgressBar: ...


class _Silent:
    """A bar that reports nothing (``progress=None``)."""

    def advance(self, steps: int = 1) -> None:
        pass

    def status(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def start_progress(progress: Progress | None, title: str, total: int | None,
                   unit: str = "it", transient: bool = False) -> ProgressBar:
    """A bar from ``progress``, or a silent one when it is None."""
    if progress is None:
        return _Silent()
    return progress(title, total, unit, transient)
