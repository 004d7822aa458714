"""Import saved captures (text, JSON, HTML files) from a folder into the raw store."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from functools import partial
from pathlib import Path

import polars as pl

from pipeline import parse, rawstore, schema, workers
from pipeline.parse.common import local_dates
from pipeline.paths import DataDir


MAX_CAPTURE_BYTES = 50 * 1024 * 1024  # as for fetched pages: no papers page comes near it


def folder_entries(folder: Path) -> list[tuple[Path, str | None]]:
    """Every file-like entry below `folder` in a stable order (by path components), with why it is
    skipped (None: it is imported). Symbolic links are not followed (a link could lead anywhere on
    the machine); hidden files (editor swap files, `.DS_Store`) are not captures. (Read with
    `os.scandir`, whose entries know their type: at 20,000 files, 0.31 s with `Path.rglob` and a
    `stat` per file and test.)"""
    if not folder.is_dir():
        raise FileNotFoundError(f"captures folder {folder} does not exist or is not a folder")
    found: list[tuple[tuple[str, ...], str | None]] = []

    def walk(directory: str, parts: tuple[str, ...], hidden: bool) -> None:
        with os.scandir(directory) as listing:
            for entry in listing:
                where, inside_hidden = (*parts, entry.name), hidden or entry.name.startswith(".")
                if entry.is_symlink():
                    found.append((where, "symbolic link, not followed"))
                elif entry.is_dir():
                    walk(entry.path, where, inside_hidden)
                elif entry.is_file():
                    found.append((where, "hidden file" if inside_hidden else None))

    walk(str(folder), (), False)
    return [(folder.joinpath(*where), why) for where, why in sorted(found, key=lambda item: item[0])]


def skipped_files(folder: Path, entries: list[tuple[Path, str | None]] | None = None) -> dict[str, str]:
    """The entries of `folder` (`folder_entries`, read again unless given) that are not imported,
    by path relative to it, and why."""
    entries = folder_entries(folder) if entries is None else entries
    return {path.relative_to(folder).as_posix(): why for path, why in entries if why}


SHOWN_DAYS_BEFORE = 7  # the site shows the latest day with papers: a weekend or holiday shows an earlier one


def capture_time(fmt: str, data: bytes | str | None, path: Path, given: dt.datetime | None) -> tuple[dt.datetime, str]:
    """When a saved page was captured (`data`: its bytes, or its text as `parse.decode` gives it),
    and the rule that says so (`captures.captured_at_basis`):

    - `import`: the time given with the import;
    - `file_mtime+page_day`: the file's modification time, confirmed by the day the page's header
      shows: a day from a week before the file time's earliest local date to its latest one (local
      time runs from UTC-12 to UTC+14; the site shows the latest day with papers); the year is the
      file time's;
    - `page_day+printed_years`: the header's day does not fit the file time (the file was copied
      or touched later): that day, at 00:00 UTC, in the page's year, which is after every year
      printed on its dates (the site prints years only for other years than the page's) and puts
      the day no later than the file time; the earliest such year;
    - `file_mtime`: the file's modification time, when the page shows no day, or one that neither
      the file time nor the printed years place.

    What no rule can tell: a file copied a whole year (or years) after the save, on the same day,
    looks saved then; and a header's day at the end of December on a page saved in January is
    placed in the year of the page's printed dates only by the second rule.
    """
    if given is not None:
        return given.astimezone(dt.timezone.utc), "import"
    saved = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
    shown = parse.page_day(fmt, data)
    if shown is None:
        return saved, "file_mtime"
    earliest, latest = local_dates(saved)
    window = [latest - dt.timedelta(days=k) for k in range((latest - earliest).days + SHOWN_DAYS_BEFORE + 1)]
    if any((d.month, d.day) == (shown.month, shown.day) and shown.year in (None, d.year) for d in window):
        return saved, "file_mtime+page_day"
    if shown.year is not None:
        years = [shown.year]
    elif shown.printed_years:
        years = range(max(shown.printed_years) + 1, latest.year + 1)
    else:
        years = []
    for year in years:
        try:
            day = dt.date(year, shown.month, shown.day)
        except ValueError:  # Feb 29 of a year without one
            continue
        if day <= latest:
            return dt.datetime(year, shown.month, shown.day, tzinfo=dt.timezone.utc), "page_day+printed_years"
    return saved, "file_mtime"


def import_folder(data_dir: DataDir, folder: Path, known_ids: set[str], captured_at: dt.datetime | None = None,
                  entries: list[tuple[Path, str | None]] | None = None) -> pl.DataFrame:
    """`captures` rows for the files of `folder` (of its `folder_entries`, read unless given) whose
    bytes are not among `known_ids` yet (a file whose bytes an earlier file of the folder had is the
    same capture)."""
    entries = folder_entries(folder) if entries is None else entries
    work = partial(_import_files, data_dir, folder, captured_at, frozenset(known_ids))
    rows, seen = [], set(known_ids)
    # (each chunk's flush waits on the disk: at a million listings, over five interleaved runs,
    # 8.1-9.4 s with three workers on two cores against 9.6-12.8 s with two)
    for chunk in workers.map_chunks(work, [path for path, skipped in entries if skipped is None],
                                   waits=True):
        for row in chunk:
            if row["capture_id"] not in seen:
                seen.add(row["capture_id"])
                rows.append(row)
    return schema.conform(rows, schema.CAPTURES)


def _import_files(data_dir: DataDir, folder: Path, captured_at: dt.datetime | None, known: frozenset[str],
                  paths: list[Path]) -> list[dict]:
    """Store the files' bytes in the raw store; a `captures` row for each whose bytes are not `known`."""
    with rawstore.Batch(data_dir) as raw:
        rows = [_import_file(raw, folder, path, captured_at, known) for path in paths]
    return [row for row in rows if row is not None]


def _import_file(raw: rawstore.Batch, folder: Path, path: Path, captured_at: dt.datetime | None,
                 known: frozenset[str]) -> dict | None:
    info = path.stat()
    origin = path.relative_to(folder).as_posix()
    if info.st_size > MAX_CAPTURE_BYTES:  # recorded (parsing rejects it), never read whole nor stored
        with open(path, "rb") as fh:
            capture_id = hashlib.file_digest(fh, "sha256").hexdigest()
        if capture_id in known:
            return None
        return {"capture_id": capture_id, "source": "text_capture", "format": parse.TOO_LARGE, "origin": origin,
                "params": json.dumps({}), "captured_at": dt.datetime.fromtimestamp(info.st_mtime, dt.timezone.utc),
                "captured_at_basis": "file_mtime", "n_bytes": info.st_size, "raw_path": None}
    data = path.read_bytes()
    capture_id, raw_path = raw.put(data)
    if capture_id in known:
        return None
    # Decoded once, for its format and its day: decoding a second time was 7 % of the CPU time of
    # importing the million-listing corpus (20,000 pages of 87 KB: 13.6 s against 12.7 s).
    text = parse.decode(data)
    fmt = parse.detect(text)
    when, basis = capture_time(fmt, text, path, captured_at)
    return {"capture_id": capture_id, "source": parse.source_of(fmt), "format": fmt, "origin": origin,
            "params": json.dumps({}), "captured_at": when, "captured_at_basis": basis, "http_status": None,
            "content_type": None, "n_bytes": len(data), "raw_path": raw_path}
