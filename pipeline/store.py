"""Parquet tables and the DuckDB catalog over them, written so that a crash cannot tear them.

Every file is written under a temporary name in its own folder and renamed into place, so a reader
(or a crash) sees the old file or the new one, never half of one. Files that belong together (the
tables one stage writes) are one commit: all are written first, then a journal naming them, then
they are renamed into place; a crash before the journal leaves the old files, a crash after it is
finished by `recover`. Stages that write tables hold the data directory's lock (`exclusive`), so two
runs never interleave their writes.
"""

from __future__ import annotations

import datetime as dt
import fcntl
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

from pipeline import schema
from pipeline.paths import DataDir

# captures last: its view counts the listings and rejects of each capture.
VIEW_TABLES = ("listings", "rejects", "papers", "sightings", "merges", "aliases", "captures")


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside `target`, renamed onto it when the block succeeds, removed if not."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(data_dir: DataDir, frames: dict[Path, pl.DataFrame]) -> None:
    """Write Parquet files (paths inside the data directory) as one change: after a crash, all of
    them are the new ones (once `recover` has run) or all are the old ones."""
    tag = uuid.uuid4().hex
    pending: list[tuple[Path, Path]] = []
    try:
        for target, frame in frames.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{tag}.pending")
            pending.append((tmp, target))
            frame.write_parquet(tmp, compression="zstd", statistics=True)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        journal = data_dir.root / f".commit-{tag}.json"
        with atomic_path(journal) as tmp:
            tmp.write_text(json.dumps([[str(a.relative_to(data_dir.root)), str(b.relative_to(data_dir.root))]
                                       for a, b in pending]))
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise
    _finish(data_dir, journal)


def _finish(data_dir: DataDir, journal: Path) -> None:
    try:
        moves = json.loads(journal.read_text())
    except FileNotFoundError:  # finished already, by a recovery
        return
    for tmp, target in moves:
        try:
            os.replace(data_dir.root / tmp, data_dir.root / target)
        except FileNotFoundError:  # moved already, by a recovery
            pass
    for folder in {(data_dir.root / target).parent for _, target in moves}:
        _fsync_dir(folder)
    journal.unlink(missing_ok=True)


STALE_SECONDS = 3600  # a temporary file this old belongs to no write in progress


def recover(data_dir: DataDir) -> None:
    """Finish the commits a crash interrupted after their journal, and delete the temporary files
    of writes that died before it."""
    for journal in sorted(data_dir.root.glob(".commit-*.json")):
        _finish(data_dir, journal)
    cutoff = time.time() - STALE_SECONDS
    strays = [*data_dir.root.glob(".*.tmp"), *(p for folder in (data_dir.tables, data_dir.raw, data_dir.root / "fetched")
                                                for pattern in (".*.pending", ".*.tmp") for p in folder.rglob(pattern))]
    for stray in strays:
        if stray.stat().st_mtime < cutoff:
            stray.unlink(missing_ok=True)


class Busy(RuntimeError):
    """Another run holds the data directory."""


@contextmanager
def exclusive(data_dir: DataDir, what: str, lock: Path | None = None) -> Iterator[None]:
    """Hold the data directory's lock (or `lock`, for files only one writer touches) while `what`
    reads and writes, after finishing any commit a crash interrupted. The lock dies with its
    process, so a killed run never leaves it held."""
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
            recover(data_dir)
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_tables(data_dir: DataDir, frames: dict[str, pl.DataFrame]) -> dict[str, Path]:
    """Tables written as one commit; their paths."""
    commit(data_dir, {data_dir.table(name): schema.conform(frame, schema.TABLES[name]) for name, frame in frames.items()})
    return {name: data_dir.table(name) for name in frames}


def write_table(data_dir: DataDir, name: str, frame: pl.DataFrame) -> Path:
    return write_tables(data_dir, {name: frame})[name]


def read_table(data_dir: DataDir, name: str) -> pl.DataFrame:
    path = data_dir.table(name)
    if not path.exists():
        return schema.empty(schema.TABLES[name])
    return schema.conform(pl.read_parquet(path), schema.TABLES[name])


def write_catalog(data_dir: DataDir) -> Path:
    """A DuckDB file with one view per table over its Parquet file, swapped in atomically."""
    with atomic_path(data_dir.catalog) as tmp:
        tmp.unlink()  # DuckDB creates the file itself
        con = duckdb.connect(str(tmp))
        try:
            for name in VIEW_TABLES:
                path = str(data_dir.table(name)).replace("'", "''")
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
    TO, ATTACH, INSTALL); the settings that say so are locked."""
    con = duckdb.connect(str(data_dir.catalog), read_only=True)
    tables = (str(data_dir.tables) + os.sep).replace("'", "''")
    con.execute(f"SET allowed_directories = ['{tables}']")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con
