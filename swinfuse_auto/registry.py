"""Name -> plug-in registries with did-you-mean lookups.

Planners, trainers and normalisation schemes register under an explicit name with a decorator.
A duplicate name is an error at import time (silently overwriting a plug-in is how two packages end
up fighting over a name). Third-party packages plug in through the entry-point groups
``swinfuse_auto.planners`` and ``swinfuse_auto.trainers``; a broken third-party plug-in is reported
only when somebody asks for it, so it never breaks the other names.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from swinfuse_auto.errors import RegistryError

T = TypeVar("T")
logger = logging.getLogger(__name__)


class Registry(Generic[T]):
    """A named collection of plug-ins of one kind.

    Args:
        kind: human-readable kind used in messages ("planner").
        builtin_module: module whose import registers the built-in plug-ins; imported lazily on the
            first lookup so that the core never imports the plug-in packages at import time.
        entry_point_group: entry-point group scanned for third-party plug-ins.

    Example:
        >>> PLANNERS = Registry("planner")
        >>> @PLANNERS.register("tiny")
        ... class TinyPlanner: ...
        >>> PLANNERS.get("tiny") is TinyPlanner
        True
    """

    def __init__(self, kind: str, builtin_module: str | None = None,
                 entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._builtin_module = builtin_module
        self._entry_point_group = entry_point_group
        self._items: dict[str, T] = {}
        self._loaded = builtin_module is None and entry_point_group is None
        self._broken: dict[str, str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; raises on a duplicate name."""

        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise RegistryError(
                    f"A {self.kind} named '{name}' is already registered "
                    f"({self._items[name]!r}); choose another name for {obj!r}.")
            self._items[name] = obj
            return obj

        return decorator

    def _load_plugins(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self._builtin_module:
            importlib.import_module(self._builtin_module)
        if self._entry_point_group:
            for ep in entry_points(group=self._entry_point_group):
                if ep.name in self._items:
                    continue
                try:
                    self.register(ep.name)(ep.load())
                except Exception as exc:  # a broken plug-in must not break the others
                    self._broken[ep.name] = f"{type(exc).__name__}: {exc}"
                    logger.debug("plug-in %s failed to load: %s", ep.name, exc)

    def get(self, name: str) -> T:
        """The plug-in registered as ``name``; a RegistryError names the closest valid names."""
        self._load_plugins()
        if name in self._items:
            return self._items[name]
        if name in self._broken:
            raise RegistryError(f"The {self.kind} plug-in '{name}' failed to import: "
                                f"{self._broken[name]}. Reinstall or fix the package providing it.")
        names = sorted(self._items)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"Did you mean '{close[0]}'? " if close else ""
        raise RegistryError(f"Unknown {self.kind} '{name}'. {hint}"
                            f"Available {self.kind}s: {', '.join(names) or '(none)'}.")

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard pattern, sorted."""
        self._load_plugins()
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._items


#: The built-in plug-ins a command uses when none is named (``--planner``, ``--trainer``).
DEFAULT_PLANNER = "default"
DEFAULT_PRETRAINER = "swin_dim_pretrain"
DEFAULT_TRAINER = "swin_dim_finetune"

PLANNERS: Registry[type] = Registry("planner", "planners", "swinfuse_auto.planners")
TRAINERS: Registry[type] = Registry("trainer", "trainers", "swinfuse_auto.trainers")
#: Named settings of a trainer recipe (:class:`swinfuse_auto.training.config.TrainerPreset`).
TRAINER_PRESETS: Registry[Any] = Registry("trainer preset", "trainers",
                                          "swinfuse_auto.trainer_presets")
