"""The raw store: every captured page's bytes, kept immutable under their sha256."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

from pipeline.paths import DataDir
from pipeline.store import flush_together


def put(data_dir: DataDir, data: bytes) -> tuple[str, str]:
    """Store `data` once; return its capture id (sha256 hex) and its path relative to the data dir.

    Bytes already stored are not written again, so a capture can never be rewritten."""
    with Batch(data_dir) as batch:
        return batch.put(data)


class Batch:
    """Stores many captures at the cost of few disk flushes: each is written under a temporary
    name, and when the batch closes all are flushed to disk together, then renamed into place.
    A crash leaves only temporary files (which `store.recover` clears), never a torn capture under
    its hash; a capture is in place before anything that names it is committed."""

    def __init__(self, data_dir: DataDir):
        self.data_dir = data_dir
        self.tag = uuid.uuid4().hex
        self.pending: dict[Path, Path] = {}  # target -> temporary file

    def put(self, data: bytes) -> tuple[str, str]:
        digest = hashlib.sha256(data).hexdigest()
        relative = Path("raw") / digest[:2] / digest
        target = self.data_dir.root / relative
        if target not in self.pending and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{digest}.{self.tag}.tmp")
            tmp.write_bytes(data)
            self.pending[target] = tmp
        return digest, relative.as_posix()

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, kind, error, trace) -> None:
        try:
            if kind is None:
                flush_together(list(self.pending.values()))
                for target, tmp in self.pending.items():
                    os.replace(tmp, target)
        finally:
            for tmp in self.pending.values():
                tmp.unlink(missing_ok=True)
