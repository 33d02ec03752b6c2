"""The README's commands exist: every command and flag it shows is accepted by that command's -h.

Code blocks and inline code spans are scanned for lines that call one of our console scripts
(directly, through ``swinfuse_auto COMMAND`` or ``torchrun ... -m swinfuse_auto COMMAND``); each
flag on such a line must appear in the command's help. A renamed flag then fails here instead of
in a reader's terminal.
"""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import pytest

from swinfuse_auto.cli.main import COMMANDS
from swinfuse_auto.cli.main import main as umbrella_main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def console_scripts() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    entries = config["options.entry_points"]["console_scripts"].strip().splitlines()
    return {line.split("=")[0].strip() for line in entries} - {"swinfuse_auto"}


def readme_snippets(text: str) -> list[str]:
    """Shell lines of the code blocks (continuations joined) and the inline code spans."""
    snippets = []
    for language, block in re.findall(r"```(\w*)\n(.*?)```", text, flags=re.S):
        if language in ("", "bash", "sh", "console"):
            snippets += block.replace("\\\n", " ").splitlines()
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    snippets += [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]
    return snippets


def command_calls(snippet: str, commands: set[str]) -> list[tuple[str, list[str]]]:
    """(command, flags) for every call of one of ``commands`` in a shell snippet."""
    snippet = snippet.split(" #")[0].replace("[", " ").replace("]", " ")
    calls = []
    for part in re.split(r"&&|;|\s\|\s", snippet):  # "a|b" is a choice, not a pipe
        try:
            words = shlex.split(part)
        except ValueError:
            continue
        if "-m" in words and words.index("-m") + 1 < len(words):  # torchrun ... -m swinfuse_auto
            words = words[words.index("-m") + 1:]
        if words and words[0] == "swinfuse_auto":
            words = words[1:]
        if words and words[0] in commands:
            flags = [w.split("=")[0] for w in words[1:] if re.match(r"--?[a-zA-Z]", w)]
            calls.append((words[0], flags))
    return calls


def help_text(command: str, capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as exit_info:
        umbrella_main([command, "-h"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_every_readme_command_and_flag_exists(capsys: pytest.CaptureFixture) -> None:
    commands = console_scripts()
    calls = [call for snippet in readme_snippets(README.read_text())
             for call in command_calls(snippet, commands)]
    shown = {command for command, _ in calls}
    assert {"plan_and_preprocess", "train_fold", "predict"} <= shown, shown
    helps = {command: help_text(command, capsys) for command in shown}
    unknown = sorted({f"{command} {flag}" for command, flags in calls for flag in flags
                      if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])",
                                       helps[command])})
    assert not unknown, f"README shows flags the commands do not have: {unknown}"


def test_the_scanner_catches_a_flag_that_does_not_exist(capsys: pytest.CaptureFixture) -> None:
    calls = command_calls("torchrun --nproc-per-node 2 -m swinfuse_auto train_fold 1 0 "
                          "--no-such-flag", console_scripts())
    assert calls == [("train_fold", ["--no-such-flag"])]
    assert "--no-such-flag" not in help_text("train_fold", capsys)


def test_the_umbrella_command_knows_every_console_script() -> None:
    assert set(COMMANDS) == console_scripts()
