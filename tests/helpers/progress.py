"""A :class:`swinfuse_auto.progress.Progress` that records what the library reported."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RecordedBar:
    title: str
    total: int | None
    unit: str
    transient: bool
    done: int = 0
    statuses: list[str] = field(default_factory=list)
    closed: bool = False

    def advance(self, steps: int = 1) -> None:
        self.done += steps

    def status(self, text: str) -> None:
        self.statuses.append(text)

    def close(self) -> None:
        self.closed = True


@dataclass
class RecordingProgress:
    """Every bar started, in order; each knows its count, statuses and whether it was closed."""

    bars: list[RecordedBar] = field(default_factory=list)

    def __call__(self, title: str, total: int | None, unit: str = "it",
                 transient: bool = False) -> RecordedBar:
        self.bars.append(RecordedBar(title, total, unit, transient))
        return self.bars[-1]
