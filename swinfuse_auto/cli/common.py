"""What every command shares: logging set-up, the error-to-exit-code translation, common flags."""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import TextIO

from swinfuse_auto.errors import SwinfuseError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def add_root_flags(parser: argparse.ArgumentParser) -> None:
    """--raw/--preprocessed/--results override SWINFUSE_RAW/_PREPROCESSED/_RESULTS."""
    group = parser.add_argument_group("folders (override the environment variables)")
    group.add_argument("--raw", metavar="DIR",
                       help="raw datasets root (default: $SWINFUSE_RAW, else $nnUNet_raw)")
    group.add_argument("--preprocessed", metavar="DIR",
                       help="preprocessed root (default: $SWINFUSE_PREPROCESSED)")
    group.add_argument("--results", metavar="DIR", help="results root (default: $SWINFUSE_RESULTS)")


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda",
                        help="compute device (default: auto = a GPU when torch sees one)")


def add_verbosity_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="debug-level logging")


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record arrives, not to the stream it was
    created with: notebooks and test runners swap and close stderr between commands."""

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", force=True,
                        handlers=[_CurrentStderrHandler()])


def report_error(exc: BaseException) -> None:
    """Print a user error as one wrapped paragraph on stderr."""
    message = textwrap.fill(f"error: {exc}", width=100, break_long_words=False,
                            break_on_hyphens=False)
    print(message, file=sys.stderr)


def run_command(build_parser: Callable[[], argparse.ArgumentParser],
                run: Callable[[argparse.Namespace], int | None],
                argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run, and map outcomes to exit codes (0 ok, 2 user error, 130 interrupt)."""
    args = build_parser().parse_args(argv)
    configure_logging(getattr(args, "verbose", False))
    try:
        return int(run(args) or 0)
    except SwinfuseError as exc:
        report_error(exc)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted; finished outputs are kept and a re-run resumes", file=sys.stderr)
        return EXIT_INTERRUPTED
