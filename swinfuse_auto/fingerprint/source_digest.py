"""A cheap digest of a raw dataset's files, so an unchanged dataset is not fingerprinted twice."""

from __future__ import annotations

import hashlib
from pathlib import Path

SOURCE_FOLDERS = ("imagesTr", "labelsTr")


def source_digest(raw_dir: Path) -> str:
    """Hash of dataset.json's content and every training file's name, size and mtime."""
    raw_dir = Path(raw_dir)
    digest = hashlib.sha256()
    dataset_json = raw_dir / "dataset.json"
    if dataset_json.exists():
        digest.update(dataset_json.read_bytes())
    for folder in SOURCE_FOLDERS:
        for path in sorted((raw_dir / folder).glob("*")):
            if path.name.startswith("."):
                continue
            stat = path.stat()
            digest.update(f"{folder}/{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]
