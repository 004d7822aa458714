"""Parquet tables and the DuckDB catalog over them, written so that a crash cannot tear them.

Every file is written under a temporary name in its own folder and renamed into place, so a reader
(or a crash) sees the old file or the new one, never half of one. Files that belong together (the
tables one stage writes) are one commit: all are written first, then a journal naming them, then
they are renamed into place; a crash before the journal leaves the old files, a crash after it is
finished by `recover`. Stages that write tables hold the data directory's lock (`exclusive`), so two
runs never interleave their writes.

The ledger (`tables/ledger.json`) is part of every table commit: for each table, the sha256 of the
file committed, its row count and the suite that audited it. A release reads only tables whose file
still has the hash the ledger gives and whose audit passed (`audited`); a table the ledger knows but
that is missing or unreadable is an error naming the file (`read_table`), never a smaller table.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from pipeline import faults, schema
from pipeline.paths import DataDir

# captures last: its view counts the listings and rejects of each capture.
VIEW_TABLES = ("listings", "rejects", "parsed", "papers", "sightings", "merges", "aliases", "captures")
LEDGER = "ledger.json"
REBUILD = "rebuild the tables from the raw store with `papers run --full-refresh`"


class StoreError(RuntimeError):
    """A table that cannot be used as it is; the message names the file and what to do."""


class NotAudited(StoreError):
    """A table a release would read has no passed audit for its current contents."""


@contextmanager
def atomic_path(target: Path, fault: str | None = None) -> Iterator[Path]:
    """A temporary path beside `target`, renamed onto it when the block succeeds, removed if not.
    `fault` names the fault points before and after the rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        if fault:
            faults.point(f"{fault}:before-move")
        os.replace(tmp, target)
        if fault:
            faults.point(f"{fault}:after-move")
    finally:
        tmp.unlink(missing_ok=True)


def fsync_path(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, content: pl.DataFrame | bytes) -> str:
    """Write a Parquet frame (or bytes) to `path`, flush it to disk; its sha256."""
    if isinstance(content, pl.DataFrame):
        content.write_parquet(path, compression="zstd", statistics=True,
                              metadata={schema.VERSION_KEY: str(schema.SCHEMA_VERSION)})
    else:
        path.write_bytes(content)
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
        os.fsync(fh.fileno())
    return digest


def commit(data_dir: DataDir, files: dict[Path, pl.DataFrame | bytes], label: str = "commit",
           ledger: dict[str, dict] | None = None) -> None:
    """Write files (paths inside the data directory: Parquet frames or bytes) as one change: after a
    crash, all of them are the new ones (once `recover` has run) or all are the old ones. With
    `ledger` (table name -> its entry, without the hash), the ledger's entries for those tables are
    updated in the same commit."""
    tag = uuid.uuid4().hex
    pending: list[tuple[Path, Path]] = []
    digests: dict[Path, str] = {}

    def stage(target: Path, content: pl.DataFrame | bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{tag}.pending")
        pending.append((tmp, target))
        digests[target] = _write_synced(tmp, content)

    try:
        for target, content in files.items():
            stage(target, content)
        if ledger is not None:
            entries = read_ledger(data_dir)
            for name, entry in ledger.items():
                entries[name] = {**entry, "sha256": digests[data_dir.table(name)]}
            stage(data_dir.tables / LEDGER, (json.dumps(entries, indent=2, sort_keys=True) + "\n").encode())
        faults.point(f"commit:{label}:staged")
        journal = data_dir.root / f".commit-{tag}.json"
        with atomic_path(journal) as tmp:
            tmp.write_text(json.dumps([[str(a.relative_to(data_dir.root)), str(b.relative_to(data_dir.root))]
                                       for a, b in pending]))
        faults.point(f"commit:{label}:journaled")
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise
    _finish(data_dir, journal, label)


def _finish(data_dir: DataDir, journal: Path, label: str | None = None) -> None:
    try:
        moves = json.loads(journal.read_text())
    except FileNotFoundError:  # finished already, by a recovery
        return
    for tmp, target in moves:
        name = Path(target).name
        if label:
            faults.point(f"commit:{label}:{name}:before-move")
        try:
            os.replace(data_dir.root / tmp, data_dir.root / target)
        except FileNotFoundError:  # moved already, by a recovery
            pass
        if label:
            faults.point(f"commit:{label}:{name}:after-move")
    for folder in {(data_dir.root / target).parent for _, target in moves}:
        fsync_path(folder)
    journal.unlink(missing_ok=True)


STALE_SECONDS = 3600  # a temporary file of a fetch (which has a lock of its own) this old is dead


def recover(data_dir: DataDir) -> None:
    """Finish the commits a crash interrupted after their journal, and clear what killed writers
    left: temporary files, and the lock files git (dulwich) leaves in the release repository.
    Called with the data directory's lock held, so no other writer of tables or releases is alive;
    fetches have locks of their own, so their temporary files are removed only when old."""
    for journal in sorted(data_dir.root.glob(".commit-*.json")):
        _finish(data_dir, journal)
    cutoff = time.time() - STALE_SECONDS
    ours = [p for folder in (data_dir.tables, data_dir.imports) for pattern in (".*.pending", ".*.tmp")
            for p in folder.rglob(pattern)]
    # (the journals of fetches are written in the data directory itself, beside the catalog)
    fetches = [*data_dir.root.glob(".*.tmp"), *(p for folder in (data_dir.raw, data_dir.root / "fetched")
                                                for pattern in (".*.pending", ".*.tmp") for p in folder.rglob(pattern))]
    for stray in ours + [p for p in fetches if p.stat().st_mtime < cutoff]:
        stray.unlink(missing_ok=True)
    git = data_dir.releases / ".git"
    if git.is_dir():  # as git advises for a process that died: remove its stale locks
        for lock in git.rglob("*.lock"):
            lock.unlink(missing_ok=True)


class Busy(RuntimeError):
    """Another run holds the data directory."""


@contextmanager
def exclusive(data_dir: DataDir, what: str, lock: Path | None = None) -> Iterator[None]:
    """Hold the data directory's lock (or `lock`, for files only one writer touches) while `what`
    reads and writes, after finishing any commit a crash interrupted. The lock dies with its
    process, so a killed run never leaves it held."""
    own = lock is None
    lock = lock or data_dir.root / ".lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another run"
            raise Busy(f"{lock.parent} is being written by {holder}; {what} did not start and changed "
                       "nothing: run it again when that one has finished") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{what} (pid {os.getpid()}, since {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC)")
        fh.flush()
        try:
            if own:
                recover(data_dir)
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_ledger(data_dir: DataDir) -> dict[str, dict]:
    path = data_dir.tables / LEDGER
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise StoreError(f"{path} is damaged ({err}): restore it from a backup, or {REBUILD}") from None


def write_tables(data_dir: DataDir, frames: dict[str, pl.DataFrame], audit: dict | None = None,
                 label: str = "tables", extra: dict[Path, pl.DataFrame | bytes] | None = None) -> dict[str, Path]:
    """Tables (and `extra` files) written as one commit, recorded in the ledger with `audit` (what
    checked them: the suite and its outcome; None for tables no suite covers); their paths."""
    files = {data_dir.table(name): schema.conform(frame, schema.TABLES[name]) for name, frame in frames.items()}
    entries = {name: {"rows": files[data_dir.table(name)].height, "audit": audit} for name in frames}
    commit(data_dir, {**files, **(extra or {})}, label, ledger=entries)
    return {name: data_dir.table(name) for name in frames}


def read_table(data_dir: DataDir, name: str) -> pl.DataFrame:
    """A table as committed; empty if it was never committed. A table the ledger knows that is
    missing, unreadable or not the file its commit wrote is a `StoreError` naming the file and what
    to do: a stage never builds on a table that changed outside the pipeline."""
    path, entry = data_dir.table(name), read_ledger(data_dir).get(name)
    if not path.exists():
        if entry is not None:
            raise StoreError(f"{path} is missing, though it was committed: restore it from a backup, or {REBUILD}")
        return schema.empty(schema.TABLES[name])
    try:
        frame = pl.read_parquet(path)
    except Exception as err:  # polars and Arrow raise many kinds for a damaged file
        raise StoreError(f"{path} is damaged and cannot be read ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}): restore it from a backup, or {REBUILD}") from None
    if entry is not None:
        with open(path, "rb") as fh:
            if hashlib.file_digest(fh, "sha256").hexdigest() != entry["sha256"]:
                raise StoreError(f"{path} is not the file its commit wrote (changed outside the pipeline): "
                                 f"restore it from a backup, or {REBUILD}")
    try:
        return schema.upgrade(frame, schema.TABLES[name], str(path))
    except schema.SchemaError as err:
        raise StoreError(str(err)) from None


def audited(data_dir: DataDir, suites: dict[str, str | None]) -> dict[str, pl.DataFrame]:
    """The tables named in `suites` (table -> the suite that must have passed on it, or None for a
    table that only has to be as committed), read only if each is the file the ledger records and
    its audit passed; otherwise `NotAudited` (or `StoreError`), saying which table and what to do."""
    ledger = read_ledger(data_dir)
    for name, suite in suites.items():
        audit = (ledger.get(name) or {}).get("audit") or {}
        if name not in ledger:
            raise NotAudited(f"{data_dir.table(name)} has no audited commit: nothing to publish; run `papers run` first")
        if suite is not None and not (audit.get("suite") == suite and audit.get("passed")):
            raise NotAudited(f"{data_dir.table(name)} has not passed the {suite} suite: run `papers run` to audit it")
    return {name: read_table(data_dir, name) for name in suites}


def write_catalog(data_dir: DataDir) -> Path:
    """A DuckDB file with one view per table over its Parquet file, swapped in atomically. The views
    name the files relative to the data directory (`tables/papers.parquet`), so a copied or
    re-mounted data directory works at once: DuckDB finds them through `file_search_path` (set by
    `connect_catalog`), or from the data directory as the working directory."""
    with atomic_path(data_dir.catalog, fault="catalog") as tmp:
        tmp.unlink()  # DuckDB creates the file itself
        con = duckdb.connect(str(tmp))
        try:
            con.execute(f"SET file_search_path = '{_quoted(data_dir.root)}'")
            for name in VIEW_TABLES:
                path = f"tables/{name}.parquet"
                if name == "captures":
                    # A capture's row says how many listings and rejects it gave.
                    con.execute(f"""
                        CREATE VIEW captures AS
                        SELECT c.*,
                               coalesce(l.n, 0)::INTEGER AS n_listings,
                               coalesce(r.n, 0)::INTEGER AS n_rejects
                        FROM read_parquet('{path}') c
                        LEFT JOIN (SELECT capture_id, count(*) AS n FROM listings GROUP BY ALL) l
                               USING (capture_id)
                        LEFT JOIN (SELECT capture_id, count(*) AS n FROM rejects GROUP BY ALL) r
                               USING (capture_id)""")
                else:
                    con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
            con.execute("CHECKPOINT")
        finally:
            con.close()
    return data_dir.catalog


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


READ_STATEMENTS = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)


def check_query(sql: str) -> None:
    """Refuse SQL that is not a query: the sandbox still lets COPY write into the tables folder."""
    for statement in duckdb.extract_statements(sql):
        if statement.type not in READ_STATEMENTS:
            raise PermissionError(f"only queries run here (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, "
                                  f"EXPLAIN), not {statement.type.name}")


def connect_catalog(data_dir: DataDir) -> duckdb.DuckDBPyConnection:
    """A read-only, sandboxed connection for analysts' SQL: it reads the tables and nothing else.
    The catalog cannot change; files outside the tables folder cannot be read or written (no COPY
    TO, ATTACH, INSTALL); the settings that say so are locked. The views' relative paths resolve
    against this data directory, wherever it is now."""
    con = duckdb.connect(str(data_dir.catalog), read_only=True)
    con.execute(f"SET file_search_path = '{_quoted(data_dir.root)}'")
    # The views' paths are checked as written (relative) and as found (absolute): both are allowed.
    con.execute(f"SET allowed_directories = ['{_quoted(data_dir.tables)}{os.sep}', 'tables{os.sep}']")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con
