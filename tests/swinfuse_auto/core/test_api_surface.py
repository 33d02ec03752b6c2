"""The public API is real functions that help() shows, and importing it never imports torch."""

from __future__ import annotations

import inspect
import pydoc
import subprocess
import sys

import swinfuse_auto.api as api

#: The stages a user runs, each a function of swinfuse_auto.api (issue 13).
STAGE_FUNCTIONS = ("plan_dataset", "plan_and_preprocess", "pretrain", "train_fold",
                   "summarize_cv", "load_model", "predict_folder", "export_model",
                   "evaluate_folders", "run_demo")


def test_help_lists_every_stage_function_with_its_signature() -> None:
    text = pydoc.render_doc(api, renderer=pydoc.plaintext)
    for name in STAGE_FUNCTIONS:
        function = getattr(api, name)
        assert inspect.isfunction(function), name
        assert function.__doc__ and function.__doc__.strip(), f"{name} has no docstring"
        assert f"{name}{inspect.signature(function)}" in text, name


def test_nothing_is_forwarded_behind_the_scenes() -> None:
    assert "__getattr__" not in vars(api)
    assert set(STAGE_FUNCTIONS) <= set(api.__all__)
    assert all(hasattr(api, name) for name in api.__all__)


def test_importing_the_api_leaves_torch_alone() -> None:
    """Planning and its worker processes must not pay for torch (0.2 GiB, seconds)."""
    code = "import sys, swinfuse_auto.api; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
