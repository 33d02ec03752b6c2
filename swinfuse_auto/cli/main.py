"""``swinfuse_auto COMMAND ...``: one umbrella for every command (same flags as the scripts)."""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Sequence

from swinfuse_auto.cli.common import EXIT_USER_ERROR

#: command -> module swinfuse_auto.cli.<command>; each is also a console script of its own.
COMMANDS = ("plan_and_preprocess", "pretrain", "train_fold", "summarize_cv", "predict",
            "evaluate", "export_model", "make_example_dataset", "demo", "visualize")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    commands = list(COMMANDS)
    if not args or args[0] in ("-h", "--help"):
        print("usage: swinfuse_auto COMMAND [ARGS ...]\n\ncommands:\n  "
              + "\n  ".join(commands) + "\n\n'swinfuse_auto COMMAND -h' explains a command.")
        return 0 if args else EXIT_USER_ERROR
    if args[0] not in commands:
        close = difflib.get_close_matches(args[0], commands, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        print(f"error: unknown command '{args[0]}'.{hint} Commands: {', '.join(commands)}.",
              file=sys.stderr)
        return EXIT_USER_ERROR
    module = importlib.import_module(f"swinfuse_auto.cli.{args[0]}")
    return int(module.main(args[1:]))
