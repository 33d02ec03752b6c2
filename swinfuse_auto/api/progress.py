"""The progress bars of the API's ``progress=True`` (and so of the commands): tqdm, drawn here.

Library code reports through :class:`swinfuse_auto.progress.Progress` callbacks and the
prediction listener; this module is where those reports become bars on stderr.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tqdm import tqdm

from swinfuse_auto.progress import Progress

if TYPE_CHECKING:  # torch is imported by prediction only, never by ``import swinfuse_auto.api``
    from swinfuse_auto.inference.folder_prediction import CaseOutcome


class _TqdmBar:
    """A :class:`swinfuse_auto.progress.ProgressBar` drawn by tqdm."""

    def __init__(self, title: str, total: int | None, unit: str, transient: bool) -> None:
        self._bar = tqdm(total=total, desc=title, unit=unit, leave=not transient)

    def advance(self, steps: int = 1) -> None:
        self._bar.update(steps)

    def status(self, text: str) -> None:
        self._bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        self._bar.close()


def tqdm_progress(title: str, total: int | None, unit: str = "it",
                  transient: bool = False) -> _TqdmBar:
    """A :class:`swinfuse_auto.progress.Progress` that draws a tqdm bar per loop."""
    return _TqdmBar(title, total, unit, transient)


def progress_for(enabled: bool) -> Progress | None:
    """What the API hands to library code for its ``progress`` flag."""
    return tqdm_progress if enabled else None


class FolderPredictionBars:
    """Prediction listener (:class:`~swinfuse_auto.inference.folder_prediction.PredictionListener`):
    one bar over the cases, and one per case over its windows (all folds, all flips)."""

    def __init__(self, total: int) -> None:
        self.cases = tqdm(total=total, desc="cases", unit="case", position=0)
        self.current: tqdm | None = None

    def case_started(self, case_id: str) -> None:
        if self.current is not None:  # the previous case's outcome comes after its write
            self.current.close()
        self.current = tqdm(desc=case_id, unit="window", position=1, leave=False)

    def windows(self, done: int, total: int) -> None:
        if self.current is not None:
            self.current.total = total
            self.current.n = done
            self.current.refresh()

    def case_finished(self, outcome: CaseOutcome) -> None:
        if outcome.failed:
            tqdm.write(f"FAILED {outcome.case_id}: {outcome.message}")
        self.cases.update()

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
        self.cases.close()
