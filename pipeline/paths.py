"""Where everything lives: one data directory, `./data` unless `PAPERS_DATA_DIR` names another."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "PAPERS_DATA_DIR"
SAMPLE_CAPTURES = Path(__file__).resolve().parent.parent / "samples" / "captures"


@dataclass(frozen=True)
class DataDir:
    root: Path

    @classmethod
    def resolve(cls, path: str | os.PathLike | None = None) -> "DataDir":
        chosen = path or os.environ.get(ENV_VAR) or "data"
        return cls(Path(chosen).expanduser().resolve())

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def imports(self) -> Path:
        """One file of `captures` rows per import from a folder, never rewritten: with the fetched
        pages' files, what the `captures` table is rebuilt from."""
        return self.root / "imports"

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def validation_docs(self) -> Path:
        """Great Expectations' Data Docs (static HTML), rewritten on every validation."""
        return self.root / "validation" / "docs"

    def table(self, name: str) -> Path:
        return self.tables / f"{name}.parquet"


def write_error(err: OSError, within: Path | None = None) -> str | None:
    """The one line for a write the machine refused (a full disk, a read-only or forbidden folder):
    the cause, the path and the next step; None for any other error. A write whose error names no
    file (a library's, such as Great Expectations' Data Docs) is named by the folder it was `within`."""
    where = err.filename or within or "the data directory"
    if err.errno == errno.ENOSPC:
        return (f"no space left on the device holding {where}: free some space and run again "
                "(the next run finishes what this one left)")
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        home = os.environ.get("DAGSTER_HOME")
        setting = "DAGSTER_HOME" if home and str(where).startswith(home) else ENV_VAR
        return f"{err.strerror}: {where}: make it writable, or set {setting} to a folder that is"
    return None
