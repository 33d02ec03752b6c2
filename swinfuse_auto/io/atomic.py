"""Write-then-rename helpers: an interrupted write never leaves a file that looks finished."""

from __future__ import annotations

import json
import os
import re
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

#: ``.FINAL.XXXXXXXX.tmpSUFFIXES``: mkstemp's random characters between our prefix and suffix.
#: Every output of the package has a suffix (.json, .npy, .nii.gz, .pt, .zip).
_TEMPORARY = re.compile(r"^\.(?P<final>.+)\.[a-z0-9_]+\.tmp(?P<suffix>(\.[^.]+)+)$")


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is named like a temporary of :func:`atomic_path` (and only then).

    The name must hold the final name, mkstemp's random part and the final suffixes, so a user's
    own hidden file (``.notes.tmp``, ``.my.notes.tmp``) is not taken for one.
    """
    match = _TEMPORARY.match(Path(path).name)
    return bool(match) and match["final"].endswith(match["suffix"])


def remove_stale_temporaries(folder: Path) -> int:
    """Delete the temporaries that killed runs left in ``folder``; returns how many.

    A killed process cannot run its clean-up, so its hidden temporary stays (often 0 bytes).
    Call this only where no other run writes into ``folder`` at the same time.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.iterdir() if p.is_file() and is_temporary(p)]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def _name_the_output(exc: OSError, final: Path) -> None:
    """Make an error while writing a temporary name the output the user asked for.

    Errors of ``file.write`` (a full disk) carry no file name, and a temporary's name means
    nothing to the user; either way the message should name ``final``.
    """
    written = Path(exc.filename) if exc.filename is not None else None
    if written is None or (written.parent == final.parent
                           and written.name.startswith(f".{final.name}.")):
        exc.filename = str(final)


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` only on success.

    The temporary name keeps the final suffixes (writers such as SimpleITK pick the format from
    them) and starts with a dot so globbing for finished outputs never sees it. An
    :class:`OSError` on the way out names ``final`` (see :func:`_name_the_output`).
    """
    final = Path(final)
    tmp: Path | None = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.",
                                        suffix=f".tmp{''.join(final.suffixes)}", dir=final.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs are meant to be shared
        os.replace(tmp, final)
    except OSError as exc:
        _name_the_output(exc, final)
        raise
    finally:
        if tmp is not None and tmp.exists():
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
