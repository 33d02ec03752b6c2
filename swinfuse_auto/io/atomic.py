"""Write-then-rename helpers: an interrupted write never leaves a file that looks finished."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` only on success.

    The temporary name keeps the final suffixes (writers such as SimpleITK pick the format from
    them) and starts with a dot so globbing for finished outputs never sees it.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(final.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}",
                                    dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs are meant to be shared
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(final: Path, writer: Callable[[Path], Any]) -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``final`` when it returns."""
    with atomic_path(final) as tmp:
        writer(tmp)


def write_json(final: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    write_atomic(Path(final), lambda p: p.write_text(json.dumps(data, indent=2) + "\n"))


def read_json(path: Path) -> Any:
    """Read JSON; a missing or malformed file raises with the file name."""
    from swinfuse_auto.errors import SwinfuseError

    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SwinfuseError(f"{path} does not exist.") from None
    except json.JSONDecodeError as exc:
        raise SwinfuseError(f"{path} is not valid JSON ({exc}). Fix or delete the file.") from None
