"""The raw store: every captured page's bytes, kept immutable under their sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline.paths import DataDir
from pipeline.store import atomic_path


def put(data_dir: DataDir, data: bytes) -> tuple[str, str]:
    """Store `data` once; return its capture id (sha256 hex) and its path relative to the data dir.

    Bytes already stored are not written again, so a capture can never be rewritten."""
    digest = hashlib.sha256(data).hexdigest()
    relative = Path("raw") / digest[:2] / digest
    target = data_dir.root / relative
    if not target.exists():
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
    return digest, relative.as_posix()
