"""The size budget of STYLE.md: modules <= 400 lines, functions <= 60 lines, every def typed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("swinfuse_auto", "planners", "trainers")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_respects_the_size_budget(path: Path) -> None:
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES
    too_long, untyped = [], []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                too_long.append(node.name)
            args = [a for a in node.args.args + node.args.kwonlyargs if a.arg not in ("self", "cls")]
            if node.returns is None or any(a.annotation is None for a in args):
                untyped.append(node.name)
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"
    assert not untyped, f"functions without full type hints: {untyped}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_uses_postponed_annotations(path: Path) -> None:
    source = path.read_text()
    if source.strip() and "def " in source:
        assert "from __future__ import annotations" in source
