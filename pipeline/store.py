"""Parquet tables and the DuckDB catalog over them, written so that a crash cannot tear them.

Every file is written under a temporary name in its own folder and renamed into place, so a reader
(or a crash) sees the old file or the new one, never half of one. Files that belong together (the
tables one stage writes) are one commit: all are written first, then a journal naming them, then
they are renamed into place; a crash before the journal leaves the old files, a crash after it is
finished by `recover`. Stages that write tables hold the data directory's lock (`exclusive`), so two
runs never interleave their writes.

The ledger (`tables/ledger.json`) is part of every table commit: for each table, the sha256 of the
file committed, its row count and the suite that audited it. Some tables (`PARTED`) are folders of
parts, each in the ledger with its sha256, so that a run writes only what changed and never reads a
wide table back to write it again: those that only grow (what parse writes, and the resolver's
records), where a commit adds parts, and the papers, where a resolve keeps the parts that hold none
of the papers it made again and writes the rest as new parts. A table written whole is cut into
parts of about PART_BYTES. A part can be written ahead of its commit (`stage_part`, while the stage
is still at work), under a temporary name that only the commit renames into place. A reader can
take some of the parts (`read_table(only=...)`, `scan_parts`, `scan_each`), each checked first. A
release reads only tables whose file still has the hash the ledger gives and whose audit passed
(`audited`); a table the ledger knows but that is missing or unreadable is an error naming the file
(`read_table`), never a smaller table.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import fcntl
import hashlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from pipeline import faults, schema, workers
from pipeline.paths import DataDir

# captures last: its view counts the listings and rejects of each capture.
VIEW_TABLES = ("listings", "rejects", "parsed", "papers", "sightings", "merges", "aliases", "captures")
LEDGER = "ledger.json"
PARTED = ("listings", "rejects", "parsed", "records", "papers")  # folders of parts
MAX_PARTS = 32  # a commit that would leave more parts writes the table whole again
# Of in-memory data a part written whole holds, about: a resolve writes again only the parts that
# hold papers it changed (at a million listings, the papers are 0.9 GB in memory: 7 parts).
PART_BYTES = 128 * 2**20
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


_SYNCFS = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None) if sys.platform == "linux" else None


def flush_together(paths: list[Path]) -> None:
    """Flush new files to disk: on Linux, when there are several, one `syncfs` of each file system
    holding them (one journal commit and one disk flush for them all, where an fsync each waits for
    its own: importing the million-listing corpus took 8.1 to 9.6 s, against 10.2 to 10.9 s),
    elsewhere an fsync each. (`syncfs` flushes whatever else waits on that file system too, and
    reports a failed write since Linux 5.8.)"""
    if _SYNCFS is None or len(paths) < 2:
        for path in paths:
            fsync_path(path)
        return
    for path in {path.stat().st_dev: path for path in paths}.values():
        fd = os.open(path, os.O_RDONLY)
        try:
            if _SYNCFS(fd) != 0:
                error = ctypes.get_errno()
                raise OSError(error, f"flushing to disk failed: {os.strerror(error)}", str(path))
        finally:
            os.close(fd)


ROW_GROUP_BYTES = 16 * 2**20  # of in-memory data a row group holds


def _row_group_rows(frame: pl.DataFrame) -> int:
    """Rows a row group of `frame` holds: about ROW_GROUP_BYTES of its data. The writer encodes a
    row group whole before writing it, and Polars' default (a quarter of a million rows: 500 MB of
    listings) made writing the resolver's records at a million listings take 580 MB more memory
    than the frame itself; in row groups of 16 MB, 30 MB more, in the same time. A table is read
    back on both cores, a row group to each: the records in 0.66 s instead of 1.28 s."""
    return max(1, int(ROW_GROUP_BYTES * frame.height / max(frame.estimated_size(), 1)))


def _write_synced(path: Path, content: pl.DataFrame | bytes) -> str:
    """Write a Parquet frame (or bytes) to `path`, flush it to disk; its sha256."""
    if isinstance(content, pl.DataFrame):
        # zstd's fastest level: at 1M listings, the listings part is written in 4.2 s against 6.2 s
        # at the default level, for a file 13 % larger (the release's files keep the default)
        content.write_parquet(path, compression="zstd", compression_level=1, statistics=True,
                              row_group_size=_row_group_rows(content),
                              metadata={schema.VERSION_KEY: str(schema.SCHEMA_VERSION)})
    else:
        path.write_bytes(content)
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
        os.fsync(fh.fileno())
    return digest


@dataclass(frozen=True)
class Staged:
    """A part of a `PARTED` table written ahead of its commit, under a temporary name in the
    table's folder: `write_tables` renames it into place, or the next `recover` removes it."""
    path: Path
    rows: int
    sha256: str


def stage_part(data_dir: DataDir, name: str, frame: pl.DataFrame) -> Staged:
    """Write rows of a `PARTED` table as a part to commit later (flushed to disk, hashed)."""
    if name not in PARTED:
        raise ValueError(f"{name} is written whole, not by parts")
    folder = data_dir.tables / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".staged-{uuid.uuid4().hex}.pending"
    frame = schema.conform(frame, schema.TABLES[name])
    return Staged(path, frame.height, _write_synced(path, frame))


def commit(data_dir: DataDir, files: dict[Path, pl.DataFrame | bytes], label: str = "commit",
           ledger: dict[str, dict] | None = None, renames: dict[Path, Path] | None = None,
           removes: list[Path] = ()) -> None:
    """Write files (paths inside the data directory: Parquet frames or bytes), rename files and
    remove files as one change: after a crash, all of it is done (once `recover` has run) or none.
    With `ledger` (table name -> its entry, without the hashes), the ledger's entries for those
    tables are updated in the same commit."""
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
                if "parts" in entry:
                    entries[name] = {**entry, "parts": [{**part, "sha256": part.get("sha256")
                                                         or digests[data_dir.tables / part["file"]]}
                                                        for part in entry["parts"]]}
                else:
                    entries[name] = {**entry, "sha256": digests[data_dir.table(name)]}
            stage(data_dir.tables / LEDGER, (json.dumps(entries, indent=2, sort_keys=True) + "\n").encode())
        faults.point(f"commit:{label}:staged")
        for target in (renames or {}).values():
            target.parent.mkdir(parents=True, exist_ok=True)
        journal = data_dir.root / f".commit-{tag}.json"

        def relative(path: Path) -> str:
            return str(path.relative_to(data_dir.root))

        with atomic_path(journal) as tmp:
            tmp.write_text(json.dumps({
                "moves": [[relative(a), relative(b)] for a, b in [*(renames or {}).items(), *pending]],
                "removes": [relative(path) for path in removes]}))
        faults.point(f"commit:{label}:journaled")
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise
    _finish(data_dir, journal, label)


def _finish(data_dir: DataDir, journal: Path, label: str | None = None) -> None:
    try:
        plan = json.loads(journal.read_text())
    except FileNotFoundError:  # finished already, by a recovery
        return
    if isinstance(plan, list):  # a journal written before removals were journaled
        plan = {"moves": plan, "removes": []}
    for tmp, target in plan["moves"]:
        name = _fault_name(Path(target))
        if label:
            faults.point(f"commit:{label}:{name}:before-move")
        try:
            os.replace(data_dir.root / tmp, data_dir.root / target)
        except FileNotFoundError:  # moved already, by a recovery
            pass
        if label:
            faults.point(f"commit:{label}:{name}:after-move")
    for path in plan["removes"]:
        (data_dir.root / path).unlink(missing_ok=True)
    for folder in {(data_dir.root / path).parent for path in [t for _, t in plan["moves"]] + plan["removes"]}:
        fsync_path(folder)
    journal.unlink(missing_ok=True)


def _fault_name(target: Path) -> str:
    """A file's name in fault points; a part's is its table's (`listings`), the same in every run."""
    return target.parent.name if target.parent.name in PARTED else target.name


STALE_SECONDS = 3600  # a temporary file of a fetch (which has a lock of its own) this old is dead


def recover(data_dir: DataDir) -> None:
    """Finish the commits a crash interrupted after their journal, and clear what killed writers
    left: temporary files, and the lock files git (dulwich) leaves in the release repository.
    Called with the data directory's lock held, so no other writer of tables or releases is alive;
    fetches have locks of their own, so their temporary files are removed only when old."""
    for journal in sorted(data_dir.root.glob(".commit-*.json")):
        _finish(data_dir, journal)
    cutoff = time.time() - STALE_SECONDS
    ours = [p for folder in (data_dir.tables, data_dir.imports) for p in _temporary(folder)]
    # (the journals of fetches are written in the data directory itself, beside the catalog)
    fetches = [*data_dir.root.glob(".*.tmp"), *(p for folder in (data_dir.raw, data_dir.root / "fetched")
                                                for p in _temporary(folder))]
    for stray in ours + [p for p in fetches if p.stat().st_mtime < cutoff]:
        stray.unlink(missing_ok=True)
    git = data_dir.releases / ".git"
    if git.is_dir():  # as git advises for a process that died: remove its stale locks
        for lock in git.rglob("*.lock"):
            lock.unlink(missing_ok=True)


def _temporary(folder: Path) -> Iterator[Path]:
    """The temporary files (`.*.pending`, `.*.tmp`) anywhere under `folder`, in one walk by name
    (every stage recovers first: `rglob` made a Path of each of the raw store's 20,000 files at 1M,
    once a pattern, 0.07 to 0.18 s a stage)."""
    for root, _, names in os.walk(folder):
        yield from (Path(root, name) for name in names if name.startswith(".") and name.endswith((".pending", ".tmp")))


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


def location(data_dir: DataDir, name: str) -> Path:
    """Where a table lives: its file, or the folder of its parts."""
    folder = data_dir.tables / name
    return folder if name in PARTED and (folder.is_dir() or not data_dir.table(name).exists()) else data_dir.table(name)


def _parts(data_dir: DataDir, name: str, entry: dict | None) -> list[dict]:
    """The committed parts of a table, oldest first (a table committed as one file is one part)."""
    if entry is None:
        path = data_dir.table(name)  # a table from before the ledger
        if not path.exists():
            return []
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        return [{"file": path.name, "rows": pl.scan_parquet(path).select(pl.len()).collect().item(), "sha256": digest}]
    if "parts" in entry:
        return entry["parts"]
    return [{"file": data_dir.table(name).name, "rows": entry["rows"], "sha256": entry["sha256"]}]


Rows = pl.DataFrame | list[Staged]  # a `PARTED` table's new rows: a frame, or parts staged already


def write_tables(data_dir: DataDir, frames: dict[str, Rows], audit: dict | None = None,
                 label: str = "tables", extra: dict[Path, pl.DataFrame | bytes] | None = None,
                 appended: dict[str, Rows] | None = None, kept: dict[str, list[dict]] | None = None) -> dict[str, Path]:
    """Tables (and `extra` files) written as one commit, recorded in the ledger with `audit` (what
    checked them: the suite and its outcome; None for tables no suite covers); their paths.
    `frames` replace whole tables; `appended` are rows added to a `PARTED` table as new parts, or
    the parts `stage_part` wrote, renamed into place, after the committed parts `kept` names for
    that table (all of them, if it names none; the others are removed). A table that would have
    more than `MAX_PARTS` parts is written whole instead."""
    files: dict[Path, pl.DataFrame | bytes] = dict(extra or {})
    entries: dict[str, dict] = {}
    renames: dict[Path, Path] = {}
    removes: list[Path] = []
    ledger = read_ledger(data_dir)
    for name, frame in {**frames, **(appended or {})}.items():
        staged, frame = (frame, schema.empty(schema.TABLES[name])) if isinstance(frame, list) else (
            [], schema.conform(frame, schema.TABLES[name]))
        if name not in PARTED:
            files[data_dir.table(name)] = frame
            entries[name] = {"rows": frame.height, "audit": audit}
            continue
        before = _parts(data_dir, name, ledger.get(name))
        parts = [] if name in frames else [dict(part) for part in (kept or {}).get(name, before)]
        if not {part["file"] for part in parts} <= {part["file"] for part in before}:
            raise ValueError(f"{name}: the parts to keep must be among those committed")
        pieces = _pieces(frame)
        if len(parts) + max(len(staged), len(pieces)) > MAX_PARTS:
            frame = pl.concat([read_table(data_dir, name, only=parts), frame, *(pl.read_parquet(s.path) for s in staged)])
            pieces, parts, removes = _pieces(frame), [], removes + [s.path for s in staged]
            staged = []
        in_use = {part["file"] for part in parts}
        removes += [data_dir.tables / part["file"] for part in before if part["file"] not in in_use]
        folder = data_dir.tables / name
        for part in parts:  # a table committed as one file becomes the first of its parts
            if Path(part["file"]).parent.name != name:
                renames[data_dir.tables / part["file"]] = folder / f"{0:06d}.parquet"
                part["file"] = f"{name}/{0:06d}.parquet"
        number = max((int(Path(part["file"]).stem) for part in before if Path(part["file"]).parent.name == name),
                     default=0)
        for number, part in enumerate(staged, number + 1):
            renames[part.path] = folder / f"{number:06d}.parquet"
            parts.append({"file": f"{name}/{number:06d}.parquet", "rows": part.rows, "sha256": part.sha256})
        if not staged and (frame.height or not parts):  # a table with no rows still has a part: its schema
            for number, piece in enumerate(pieces, number + 1):
                files[folder / f"{number:06d}.parquet"] = piece
                parts.append({"file": f"{name}/{number:06d}.parquet", "rows": piece.height})
        entries[name] = {"rows": sum(part["rows"] for part in parts), "audit": audit, "parts": parts}
    commit(data_dir, files, label, ledger=entries, renames=renames, removes=removes)
    _record_verified(data_dir)
    return {name: location(data_dir, name) for name in entries}


def _pieces(frame: pl.DataFrame) -> list[pl.DataFrame]:
    """`frame` cut into parts of about PART_BYTES (one, if it has no rows)."""
    rows = max(1, int(PART_BYTES * frame.height / max(frame.estimated_size(), 1)))
    return [frame.slice(start, rows) for start in range(0, frame.height, rows)] or [frame]


def parts(data_dir: DataDir, name: str) -> list[dict]:
    """The committed parts of a table (file, rows, sha256), oldest first."""
    return _parts(data_dir, name, read_ledger(data_dir).get(name))


def read_table(data_dir: DataDir, name: str, columns: list[str] | None = None,
               only: list[dict] | None = None) -> pl.DataFrame:
    """A table as committed (only `columns`, if given; only the parts `only`, if given); empty if
    it was never committed. A table the ledger knows whose file (or part) is missing, unreadable or
    not the file its commit wrote is a `StoreError` naming the file and what to do: a stage never
    builds on a table that changed outside the pipeline."""
    entry = read_ledger(data_dir).get(name)
    wanted = {c: t for c, t in schema.TABLES[name].items() if columns is None or c in columns}
    if entry is None and only is None:
        if name in PARTED and any((data_dir.tables / name).glob("*.parquet")):
            raise StoreError(f"{data_dir.tables / LEDGER} does not know the parts in {data_dir.tables / name}: "
                             f"restore the ledger from a backup, or {REBUILD}")
        path = data_dir.table(name)  # a table from before the ledger
        return _read(path, name, wanted) if path.exists() else schema.empty(wanted)
    files = [(data_dir.tables / part["file"], name, part["sha256"])
             for part in (_parts(data_dir, name, entry) if only is None else only)]
    frames = [_read_checked(file[0], present, wanted) for file, present in zip(files, _checked_all(data_dir, files))]
    return pl.concat(frames) if frames else schema.empty(wanted)


def check(data_dir: DataDir, *names: str) -> None:
    """Check committed tables' files as `read_table` does, without reading their rows: for a stage
    that has nothing to add to tables it would otherwise have read. (The files are hashed on every
    core: hashlib works outside the GIL.)"""
    ledger = read_ledger(data_dir)
    _checked_all(data_dir, [(data_dir.tables / part["file"], name, part["sha256"])
                  for name in names if name in ledger for part in _parts(data_dir, name, ledger[name])])


def scan_parts(data_dir: DataDir, name: str, only: list[dict]) -> pl.LazyFrame:
    """Parts of a table, lazily, in the current schema: for reading some of their rows or columns
    without holding the whole table. Each part is checked first as `read_table` checks it (its
    columns, and that it is the file its commit wrote)."""
    frames = scan_each(data_dir, name, only)
    return pl.concat(frames) if frames else schema.empty(schema.TABLES[name]).lazy()


def scan_each(data_dir: DataDir, name: str, only: list[dict]) -> list[pl.LazyFrame]:
    """`scan_parts`, a lazy frame for each part."""
    files = [(data_dir.tables / part["file"], name, part["sha256"]) for part in only]
    return [pl.scan_parquet(file[0]).select(
        [pl.col(c) if c in present else pl.lit(None, t).alias(c) for c, t in schema.TABLES[name].items()])
        for file, present in zip(files, _checked_all(data_dir, files))]


def scan_table(data_dir: DataDir, name: str) -> pl.LazyFrame:
    """A table as committed, lazily: for counts and previews, which read only what they show. The
    files are not checked against the ledger (`read_table` does that for what stages build on)."""
    paths = [data_dir.tables / part["file"] for part in _parts(data_dir, name, read_ledger(data_dir).get(name))]
    frames = [pl.scan_parquet(path) for path in paths if path.exists()]
    return pl.concat(frames, how="diagonal_relaxed") if frames else schema.empty(schema.TABLES[name]).lazy()


def _read(path: Path, name: str, wanted: dict) -> pl.DataFrame:
    """A table's file from before the ledger (nothing to check it against but its schema)."""
    return _read_checked(path, _checked(path, name, None), wanted)


def _read_checked(path: Path, present: dict, wanted: dict) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path, columns=[c for c in present if c in wanted])
    except Exception as err:  # polars and Arrow raise many kinds for a damaged file
        raise _damaged(path, err) from None
    return schema.upgrade(frame, wanted, str(path))


def _checked_all(data_dir: DataDir, files: list[tuple[Path, str, str | None]]) -> list[dict]:
    """`_checked` of each file (path, table, sha256), on every core when there are several (hashlib
    works outside the GIL). A file that this process or an earlier one found to be what its commit
    wrote (`VERIFIED`) is not hashed again while `stat` says it was not written since."""
    since = _recalled(data_dir, [path for path, _, sha256 in files if sha256 is not None])
    if len(files) < 2:
        return [_checked(*file, since) for file in files]
    with ThreadPoolExecutor(min(len(files), workers.cores())) as pool:
        return list(pool.map(lambda file: _checked(*file, since), files))


def _checked(path: Path, name: str, sha256: str | None, since: int | None = None) -> dict:
    """The columns of a committed file, once it is known to be the file its commit wrote (when its
    sha256 is given) and readable in the current schema; a `StoreError` saying what to do if not.
    `since`: the file system's time before the file is hashed (`_file_system_now`), if known."""
    if not path.exists():
        raise StoreError(f"{path} is missing, though it was committed: restore it from a backup, or {REBUILD}")
    try:
        present = pl.read_parquet_schema(path)
    except Exception as err:
        raise _damaged(path, err) from None
    if sha256 is not None and not _verified_before(path, sha256):
        with open(path, "rb") as fh:
            stat = _stat_key(os.fstat(fh.fileno()))
            if hashlib.file_digest(fh, "sha256").hexdigest() != sha256:
                raise StoreError(f"{path} is not the file its commit wrote (changed outside the pipeline): "
                                 f"restore it from a backup, or {REBUILD}")
        _VERIFIED[path] = (stat, sha256, since)
    try:
        schema.upgrade(pl.DataFrame(schema=present), schema.TABLES[name], str(path))  # every column, not only those read
    except schema.SchemaError as err:
        raise StoreError(str(err)) from None
    return present


# Files found to be what their commit wrote, with what `stat` said of them then, and the file
# system's time before they were hashed (None: not hashed by this process): a run's stages read the
# same files (at a million listings, a day's run hashed 1 GB of them twice). A file written since
# (its inode, size, modification or change time differ) is hashed again.
_VERIFIED: dict[Path, tuple[tuple[int, ...], str, int | None]] = {}
# The files of `_VERIFIED` kept for the processes after this one, in the tables folder: each day's
# run read (and hashed) every part of the listings and the records again, 1.7 GB at a million
# listings. As git's index does for a work tree: a file is taken as verified while its `stat` is
# the one recorded, and recorded only if it was last written before its hashing began (by the file
# system's clock), so that no write after the hashing can leave its `stat` as it was.
VERIFIED = "verified.json"


def _stat_key(stat: os.stat_result) -> tuple[int, ...]:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


def _read_verified(data_dir: DataDir) -> dict[str, list]:
    """The record (file relative to the tables folder -> its `stat` key then and sha256); a
    missing or unreadable record is an empty one (the files are hashed again)."""
    try:
        record = json.loads((data_dir.tables / VERIFIED).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _recalled(data_dir: DataDir, paths: list[Path]) -> int | None:
    """Take into `_VERIFIED` the files of `paths` the record vouches for as they are now; the file
    system's time now if any is left to hash, else None."""
    record, left = None, False
    for path in paths:
        try:
            key = _stat_key(path.stat())
        except OSError:
            continue  # (`_checked` says it is missing)
        known = _VERIFIED.get(path)
        if known is not None and known[0] == key:
            continue
        record = _read_verified(data_dir) if record is None else record
        entry = record.get(path.relative_to(data_dir.tables).as_posix())
        if isinstance(entry, list) and len(entry) == 6 and tuple(entry[:5]) == key:
            _VERIFIED[path] = (key, entry[5], None)
        else:
            left = True
    return _file_system_now(data_dir.tables) if left else None


def _record_verified(data_dir: DataDir) -> None:
    """Add to the record the files of the tables folder this process hashed whose last write (change
    time) came before their hashing began, and drop the entries of files gone or written since.
    Written by a commit only: a run that commits nothing (nothing new, a dry run) writes nothing. A
    record that cannot be written is left as it was: it only spares hashing. The files this process
    hashed that are gone or written since leave `_VERIFIED` too (it would hash them again anyway):
    a process that lives long, as `dagster dev` does, would otherwise keep every part ever replaced
    and stat them all at each commit."""
    new = {}
    for path, (key, sha256, since) in list(_VERIFIED.items()):
        if not _as_stated(path, key):
            del _VERIFIED[path]
        elif since is not None and key[4] < since and path.is_relative_to(data_dir.tables):
            new[path.relative_to(data_dir.tables).as_posix()] = [*key, sha256]
    record = _read_verified(data_dir)
    if all(record.get(name) == entry for name, entry in new.items()):
        return
    kept = {name: entry for name, entry in record.items() if name not in new  # (`new` is as stated: just seen)
            and isinstance(entry, list) and len(entry) == 6 and _as_stated(data_dir.tables / name, tuple(entry[:5]))}
    kept.update(new)
    temporary = data_dir.tables / f".{VERIFIED}.{uuid.uuid4().hex}.tmp"
    try:
        temporary.write_text(json.dumps(kept, indent=1, sort_keys=True) + "\n")
        os.replace(temporary, data_dir.tables / VERIFIED)
    except OSError:
        temporary.unlink(missing_ok=True)


def _as_stated(path: Path, key: tuple) -> bool:
    """Whether `stat` says of the file what `key` says (False for a file gone)."""
    try:
        return _stat_key(path.stat()) == key
    except OSError:
        return False


def _file_system_now(folder: Path) -> int | None:
    """The time the file system gives a file written now (its clock, at its granularity), in ns,
    read from a file made and removed at once; None if nothing can be written in `folder`. A file
    written after this cannot be older."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".now-", suffix=".tmp")
    except OSError:
        return None
    try:
        return os.fstat(fd).st_ctime_ns
    finally:
        os.close(fd)
        Path(name).unlink(missing_ok=True)


def _verified_before(path: Path, sha256: str) -> bool:
    known = _VERIFIED.get(path)
    return known is not None and known[1] == sha256 and _as_stated(path, known[0])


def _damaged(path: Path, err: Exception) -> StoreError:
    return StoreError(f"{path} is damaged and cannot be read ({type(err).__name__}: "
                      f"{str(err).splitlines()[0] if str(err) else ''}): restore it from a backup, or {REBUILD}")


def last_audit(ledger: dict, name: str) -> dict:
    """The audit of a table's last commit, as the ledger records it ({} if none)."""
    return (ledger.get(name) or {}).get("audit") or {}


def audited_files(data_dir: DataDir, suites: dict[str, str | None]) -> dict[str, list[str]]:
    """The sha256 of each committed file of the tables named in `suites` (table -> the suite that
    must have passed on it, or None for a table that only has to be as committed), if each has a
    commit whose audit passed; otherwise `NotAudited`, saying which table and what to do. The
    files themselves are not read."""
    ledger = read_ledger(data_dir)
    for name, suite in suites.items():
        audit = last_audit(ledger, name)
        if name not in ledger:
            raise NotAudited(f"{location(data_dir, name)} has no audited commit: nothing to publish; run `papers run` first")
        if suite is not None and not (audit.get("suite") == suite and audit.get("passed")):
            raise NotAudited(f"{location(data_dir, name)} has not passed the {suite} suite: run `papers run` to audit it")
    return {name: [part["sha256"] for part in _parts(data_dir, name, ledger[name])] for name in suites}


def write_catalog(data_dir: DataDir) -> Path:
    """A DuckDB file with one view per table over its Parquet file (or its parts), swapped in
    atomically. The views name the files relative to the data directory (`tables/sightings.parquet`,
    `tables/papers/*.parquet`), so a copied or re-mounted data directory works at once: DuckDB
    finds them through `file_search_path` (set by `connect_catalog`), or from the data directory as
    the working directory."""
    with atomic_path(data_dir.catalog, fault="catalog") as tmp:
        tmp.unlink()  # DuckDB creates the file itself
        con = duckdb.connect(str(tmp))
        try:
            con.execute(f"SET file_search_path = '{_quoted(data_dir.root)}'")
            for name in VIEW_TABLES:
                # parts may be of earlier schemas: their columns are matched by name
                source = (f"read_parquet('tables/{name}/*.parquet', union_by_name = true)"
                          if location(data_dir, name).is_dir() else f"read_parquet('tables/{name}.parquet')")
                if name == "captures":
                    # A capture's row says how many listings and rejects it gave.
                    con.execute(f"""
                        CREATE VIEW captures AS
                        SELECT c.*,
                               coalesce(l.n, 0)::INTEGER AS n_listings,
                               coalesce(r.n, 0)::INTEGER AS n_rejects
                        FROM {source} c
                        LEFT JOIN (SELECT capture_id, count(*) AS n FROM listings GROUP BY ALL) l
                               USING (capture_id)
                        LEFT JOIN (SELECT capture_id, count(*) AS n FROM rejects GROUP BY ALL) r
                               USING (capture_id)""")
                else:
                    con.execute(f"CREATE VIEW {name} AS SELECT * FROM {source}")
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
