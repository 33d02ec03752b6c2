"""The layering of ARCHITECTURE.md holds: every import points down the data flow.

The layer table is read from ARCHITECTURE.md itself (its ```layers block), so the document and
this test cannot drift apart. Every ``import`` and ``from ... import`` of every module of the core
and of the plug-in packages is checked, wherever it stands: at the top, inside a function, under
``if TYPE_CHECKING``. A lazy import is still a dependency; it only moves the cost.

Rule: a core package may import packages of lower layers and itself; two packages of one layer
never import each other; the core never imports a plug-in package (it finds plug-ins through the
registry); a plug-in may import the core and itself, not another plug-in.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = "swinfuse_auto"
ARCHITECTURE = ROOT / "ARCHITECTURE.md"


@dataclass(frozen=True)
class Layering:
    """Layer number of each core component and the names of the plug-in packages."""

    layers: dict[str, int]
    plugins: frozenset[str]


def read_layering(text: str) -> Layering:
    """Parse the ```layers block: ``N name name ...`` lines and one ``plug-ins: a b`` line."""
    match = re.search(r"```layers\n(.*?)```", text, flags=re.S)
    assert match, "ARCHITECTURE.md has no ```layers block"
    layers, plugins = {}, frozenset()
    for line in match[1].splitlines():
        words = line.replace(",", " ").split()
        if not words:
            continue
        if words[0] == "plug-ins:":
            plugins = frozenset(words[1:])
            continue
        for name in words[1:]:
            assert name not in layers, f"{name} is in two layers"
            layers[name] = int(words[0])
    return Layering(layers, plugins)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(source: str, module: str, is_package: bool = False
                     ) -> list[tuple[int, str]]:
    """(line, imported module) for every import statement of ``source``, nested ones too.

    ``from pkg import name`` counts as ``pkg.name`` (name may be a submodule); a component is
    decided by the first two parts, so a name that is an attribute does no harm.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, is_package, node)
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def component(module: str, layering: Layering) -> str | None:
    """The layer-table name a module belongs to; None for the standard library and third party."""
    parts = module.split(".")
    if parts[0] in layering.plugins:
        return parts[0]
    if parts[0] != CORE:
        return None
    if len(parts) == 1 or not ((ROOT / CORE / parts[1]).is_dir()
                               or (ROOT / CORE / f"{parts[1]}.py").is_file()):
        return "__init__"  # the root package itself (``from swinfuse_auto import __version__``)
    return parts[1]


def violations(source: str, module: str, layering: Layering, is_package: bool = False
               ) -> list[str]:
    """Every import of ``source`` (the code of ``module``) that breaks the rule, in words."""
    here = component(module, layering)
    problems = []
    for line, target in imported_modules(source, module, is_package):
        there = component(target, layering)
        if there is None or there == here:
            continue
        where = f"{module}:{line} imports {target}"
        if here in layering.plugins:
            if there in layering.plugins:
                problems.append(f"{where}: a plug-in imports another plug-in")
            continue
        if there in layering.plugins:
            problems.append(f"{where}: the core imports a plug-in (look it up in the registry)")
            continue
        for name in (here, there):
            if name not in layering.layers:
                problems.append(f"{where}: '{name}' has no layer in ARCHITECTURE.md")
        if here in layering.layers and there in layering.layers:
            mine, theirs = layering.layers[here], layering.layers[there]
            if theirs == mine:
                problems.append(f"{where}: {here} and {there} are siblings (layer {mine})")
            elif theirs > mine:
                problems.append(f"{where}: points up from {here} (layer {mine}) to {there} "
                                f"(layer {theirs})")
    return problems


def _sources() -> list[Path]:
    layering = read_layering(ARCHITECTURE.read_text())
    return sorted(p for package in (CORE, *layering.plugins)
                  for p in (ROOT / package).rglob("*.py"))


@pytest.fixture(scope="module")
def layering() -> Layering:
    return read_layering(ARCHITECTURE.read_text())


def test_every_import_points_down_the_layers(layering: Layering) -> None:
    problems = [problem for path in _sources()
                for problem in violations(path.read_text(), module_name(path), layering,
                                          path.name == "__init__.py")]
    assert not problems, "\n".join(problems)


def test_every_package_of_the_core_has_a_layer(layering: Layering) -> None:
    names = {p.stem if p.is_file() else p.name for p in (ROOT / CORE).iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    assert names == set(layering.layers), (
        f"without a layer: {sorted(names - set(layering.layers))}; "
        f"in the table but not in the package: {sorted(set(layering.layers) - names)}")
    assert all((ROOT / plugin / "__init__.py").exists() for plugin in layering.plugins)


#: Imports that pointed the wrong way before the layering (issue 13), each in the place it was
#: (the checker run on that tree reports exactly these kinds), and the same kinds in other forms.
BACK_EDGES = [
    ("swinfuse_auto.api", "from planners.default import PlanningContext"),
    ("swinfuse_auto.fingerprint.case_stats", "from swinfuse_auto.preprocessing.crop import crop"),
    ("swinfuse_auto.io.output_checks",
     "def f():\n    from swinfuse_auto.networks.cost_model import count_parameters"),
    ("swinfuse_auto.io.output_checks", "def f():\n    from swinfuse_auto.plans.schema import Plan"),
    ("swinfuse_auto.plans.schema",
     "from swinfuse_auto.preprocessing.normalize import NORMALIZATIONS"),
    ("swinfuse_auto.training.validation", "from swinfuse_auto.inference.export import x"),
    ("swinfuse_auto.training.validation",
     "from swinfuse_auto.evaluation.folder_eval import evaluate_folders"),
    ("swinfuse_auto.inference.predictor", "from swinfuse_auto.training.device import x"),
    ("swinfuse_auto.inference.model",
     "from ..training.fold_model import model_folder_name"),  # relative
    ("swinfuse_auto.inference.archive", "from swinfuse_auto.training.fold_model import x"),
    ("swinfuse_auto.training.train_fold_runner",
     "if TYPE_CHECKING:\n    import swinfuse_auto.api"),
    ("swinfuse_auto.registry", "import trainers.finetune"),
    ("planners.default", "from trainers import presets"),
]


@pytest.mark.parametrize("module, source", BACK_EDGES)
def test_the_rule_catches_a_back_pointing_import(layering: Layering, module: str,
                                                 source: str) -> None:
    problems = violations(source, module, layering)
    assert len(problems) == 1, problems


@pytest.mark.parametrize("module, source", [
    ("swinfuse_auto.inference.fold_ensemble",
     "def f():\n    from swinfuse_auto.models.fold_model import load_fold_model"),
    ("swinfuse_auto.stages.fold_validation", "from swinfuse_auto.evaluation import folder_eval"),
    ("swinfuse_auto.plans.schema", "from .migrations import migrate"),
    ("planners.default", "from swinfuse_auto.api import plan_dataset"),
    ("swinfuse_auto.models.archive", "from swinfuse_auto import __version__"),
    ("swinfuse_auto.io.image", "import numpy\nfrom collections import abc"),
])
def test_the_rule_allows_imports_that_point_down(layering: Layering, module: str,
                                                 source: str) -> None:
    assert violations(source, module, layering) == []
