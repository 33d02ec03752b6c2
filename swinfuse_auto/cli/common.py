"""What every command shares: logging set-up, the error-to-exit-code translation, common flags."""

from __future__ import annotations

import argparse
import errno
import logging
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import TextIO, TypeVar

from swinfuse_auto.errors import SwinfuseError

T = TypeVar("T")
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
WRAP_WIDTH = 100

#: The flag that chooses each command's output location, named in the fix of an OS error.
_OUTPUT_OPTIONS = {"plan_and_preprocess": "--preprocessed", "pretrain": "--results",
                   "train_fold": "--results", "predict": "-o", "evaluate": "--json",
                   "export_model": "-o", "demo": "--output", "summarize_cv": "--results",
                   "make_example_dataset": "another OUTPUT_ROOT"}
#: The fix for an OS error, by errno ({choose}: how to pick another folder); others: _OTHER_FIX.
_OS_ERROR_FIXES = {
    errno.ENOSPC: "Free disk space or {choose}.",
    errno.EDQUOT: "Free space within your disk quota or {choose}.",
    errno.EACCES: "Give this user access to it or {choose}.",
    errno.EPERM: "Make it writable (permissions, chattr -i) or {choose}.",
    errno.EROFS: "The file system is mounted read-only; {choose}.",
    errno.ENOENT: "Check the path; a folder may have been moved or deleted during the run.",
}
_OTHER_FIX = ("Check the file and the disk, then run the command again; finished outputs are "
              "kept and a re-run resumes.")


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


def add_training_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that end ``pretrain`` and ``train_fold``: device, progress, roots, verbosity."""
    add_device_flag(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_root_flags(parser)
    add_verbosity_flag(parser)


def run_training_stage(args: argparse.Namespace, stage: Callable[[], T]) -> T:
    """Run a training stage once its results folder is known to take the checkpoints, and leave
    a torchrun process group cleanly on every rank, however the stage ends."""
    from swinfuse_auto.stages.output_space import check_training_output
    from swinfuse_auto.training.distributed import shutdown_distributed

    check_training_output(args.dataset, args.raw, args.preprocessed, args.results)
    try:
        return stage()
    finally:
        shutdown_distributed()


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


def _wrap_line(line: str) -> str:
    """Wrap one line of a message; continuation lines align with its text (after "- ")."""
    if not line.strip():
        return ""
    indent = line[: len(line) - len(line.lstrip())]
    hanging = indent + "  " if line.lstrip().startswith("- ") else indent
    return textwrap.fill(line, width=WRAP_WIDTH, subsequent_indent=hanging,
                         break_long_words=False, break_on_hyphens=False)


def wrap_message(text: str) -> str:
    """Wrap each line of ``text`` on its own: a list of problems keeps one line per problem."""
    return "\n".join(_wrap_line(line) for line in text.splitlines())


def describe_os_error(exc: OSError, output_option: str | None = None) -> str:
    """What an OS error means for the user: which file, what went wrong, and the fix."""
    what = exc.strerror or str(exc) or type(exc).__name__
    where = f"{exc.filename}: " if exc.filename is not None else ""
    choose = f"choose another folder with {output_option}" if output_option else \
        "choose another output folder"
    fix = _OS_ERROR_FIXES.get(exc.errno, _OTHER_FIX) if exc.errno is not None else _OTHER_FIX
    return f"{where}{what}. {fix.format(choose=choose)}"


def report_error(exc: BaseException, output_option: str | None = None) -> None:
    """Print a user error on stderr: one wrapped paragraph, or one wrapped line per line of a
    multi-line message (a list of problems). An OS error names its file and the fix, with
    ``output_option``, the flag choosing the command's output location, when it has one."""
    text = describe_os_error(exc, output_option) if isinstance(exc, OSError) else str(exc)
    print(wrap_message(f"error: {text}"), file=sys.stderr)


def run_command(build_parser: Callable[[], argparse.ArgumentParser],
                run: Callable[[argparse.Namespace], int | None],
                argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run, and map outcomes to exit codes (0 ok, 2 user error or OS error such
    as a full disk, 130 interrupt)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(getattr(args, "verbose", False))
    try:
        return int(run(args) or 0)
    except (SwinfuseError, OSError) as exc:
        report_error(exc, _OUTPUT_OPTIONS.get(parser.prog))
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted; finished outputs are kept and a re-run resumes", file=sys.stderr)
        return EXIT_INTERRUPTED
