"""Import saved captures (text, JSON, HTML files) from a folder into the raw store."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import polars as pl

from pipeline import parse, rawstore, schema
from pipeline.paths import DataDir


MAX_CAPTURE_BYTES = 50 * 1024 * 1024  # as for fetched pages: no papers page comes near it


def capture_files(folder: Path) -> list[Path]:
    """Every regular, non-hidden file below `folder`, in a stable order; symbolic links are not
    followed (a link could lead anywhere on the machine)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"captures folder {folder} does not exist or is not a folder")
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def capture_time(fmt: str, data: bytes, path: Path, given: dt.datetime | None) -> tuple[dt.datetime, str]:
    """When a saved page was captured: the time given with the import, else the page's own header,
    else the file's modification time; with the rule that gave it."""
    if given is not None:
        return given.astimezone(dt.timezone.utc), "import"
    saved = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
    from_page = parse.page_time(fmt, data)
    # A page cannot be captured after its file was written: a later page time is a misreading (say,
    # a date printed in the future pushed the inferred year up), and the file's time is used instead.
    if from_page is not None and from_page <= saved:
        return from_page, "page_header"
    return saved, "file_mtime"


def import_folder(data_dir: DataDir, folder: Path, known_ids: set[str],
                  captured_at: dt.datetime | None = None) -> pl.DataFrame:
    """`captures` rows for the files of `folder` whose bytes are not among `known_ids` yet."""
    rows, seen = [], set(known_ids)
    for path in capture_files(folder):
        info = path.stat()
        if info.st_size > MAX_CAPTURE_BYTES:  # recorded (parsing rejects it), never read whole nor stored
            with open(path, "rb") as fh:
                capture_id = hashlib.file_digest(fh, "sha256").hexdigest()
            if capture_id not in seen:
                seen.add(capture_id)
                rows.append({"capture_id": capture_id, "source": "text_capture", "format": parse.TOO_LARGE,
                             "origin": path.relative_to(folder).as_posix(), "params": json.dumps({}),
                             "captured_at": dt.datetime.fromtimestamp(info.st_mtime, dt.timezone.utc),
                             "captured_at_basis": "file_mtime", "n_bytes": info.st_size, "raw_path": None})
            continue
        data = path.read_bytes()
        capture_id, raw_path = rawstore.put(data_dir, data)
        if capture_id in seen:
            continue
        seen.add(capture_id)
        fmt = parse.detect(data)
        when, basis = capture_time(fmt, data, path, captured_at)
        rows.append({
            "capture_id": capture_id,
            "source": parse.source_of(fmt),
            "format": fmt,
            "origin": path.relative_to(folder).as_posix(),
            "params": json.dumps({}),
            "captured_at": when,
            "captured_at_basis": basis,
            "http_status": None,
            "content_type": None,
            "n_bytes": len(data),
            "raw_path": raw_path,
        })
    return schema.conform(rows, schema.CAPTURES)
