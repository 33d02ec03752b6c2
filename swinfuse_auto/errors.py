"""One exception hierarchy, so callers (and the CLI) can tell user errors from bugs.

Every message says what failed, where (file, case or JSON path), what was expected and how to fix
it. The CLI turns any :class:`SwinfuseError` into a one-paragraph message and a non-zero exit.
"""

from __future__ import annotations


class SwinfuseError(Exception):
    """Base class of every error this package raises on purpose."""


class DatasetError(SwinfuseError, ValueError):
    """The raw dataset (dataset.json, images, labels) is missing, unreadable or inconsistent."""


class PlanError(SwinfuseError, ValueError):
    """A plans.json file is missing, malformed or violates a constraint of the network."""


class ConfigError(SwinfuseError, ValueError):
    """A user-supplied option or environment variable is invalid."""


class RegistryError(SwinfuseError, KeyError):
    """A plug-in name (planner, trainer, scheme, ...) is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message; show it as written.
        return str(self.args[0]) if self.args else ""


class CheckpointError(SwinfuseError, ValueError):
    """A checkpoint or model archive is missing, truncated, tampered with or incompatible."""


class PreprocessingError(SwinfuseError, RuntimeError):
    """Preprocessing a case failed, or preprocessed data needed by a later stage is missing."""
