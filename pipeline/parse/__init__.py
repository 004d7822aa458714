"""Parse captures into listings and rejects.

The parser for a capture is chosen from its content, never from its file name. Every entry a page
shows ends as exactly one listing or one reject; a page no parser recognises is one reject.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl

from pipeline import schema, workers
from pipeline.normalize import title_key_expr
from pipeline.parse import api_json, html_page, text_block, text_compact
from pipeline.parse.common import ParseContext, Reject, excerpt


@dataclass(frozen=True)
class Format:
    name: str
    source: str  # the `source` of a capture of this format imported from a file
    looks_like: Callable[[str], bool]
    parse: Callable[[str, ParseContext], Iterator[dict | Reject]]
    page_day: Callable[[str], text_block.PageDay | None] | None = None


# In the order they are tried: the most specific tests first (a JSON document before text layouts).
FORMATS = [
    Format("api_items", "hf_daily_api", api_json.looks_like_items, api_json.parse_items),
    Format("api_paper", "hf_paper_api", api_json.looks_like_paper, api_json.parse_paper),
    Format("text_compact", "text_capture", text_compact.looks_like, text_compact.parse),
    Format("paper_page", "hf_html", html_page.looks_like_paper_page, html_page.parse_paper_page),
    Format("html", "hf_html", html_page.looks_like, html_page.parse),
    Format("text_block", "text_capture", text_block.looks_like, text_block.parse, text_block.page_day),
]
_BY_NAME = {f.name: f for f in FORMATS}
UNKNOWN = "unknown"
TOO_LARGE = "too_large"  # a file over the import size cap: recorded, not stored


def decode(data: bytes) -> str | None:
    """The text of a capture: UTF-8 (a BOM tolerated) or UTF-16 with a BOM; None for anything else."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def detect(data: bytes | str | None) -> str:
    """The format of a capture, from its bytes or from its text as `decode` gives it (None: bytes
    that are no text)."""
    text = decode(data) if isinstance(data, bytes) else data
    if text is None:  # (a control character in one field is that field's problem, not the page's)
        return UNKNOWN
    for fmt in FORMATS:
        if fmt.looks_like(text):
            return fmt.name
    return UNKNOWN


def source_of(format_name: str) -> str:
    return _BY_NAME[format_name].source if format_name in _BY_NAME else "text_capture"


def page_day(format_name: str, data: bytes | str | None) -> text_block.PageDay | None:
    """The day a saved page's header shows, for the formats that show one (from the page's bytes,
    or its text as `decode` gives it)."""
    fmt = _BY_NAME.get(format_name)
    text = decode(data) if isinstance(data, bytes) else data
    if fmt is None or fmt.page_day is None or text is None:
        return None
    return fmt.page_day(text)


def _unknown(text: str) -> str:
    """Why a page matches no format, as precisely as its content allows."""
    doc = api_json.load(text) if text.lstrip().startswith(("[", "{")) else None
    if isinstance(doc, list):
        kinds = sorted({type(v).__name__ for v in doc})
        return f"JSON that is a list of {', '.join(kinds)}, not of daily-papers items (objects with a `paper`)"
    if isinstance(doc, dict):
        return (f"JSON that is an object with keys {', '.join(sorted(doc)[:8])}, neither a daily-papers item "
                "nor a paper")
    return "a page that matches no known format"


def parse_capture(capture: dict, data: bytes) -> tuple[list[dict], list[dict]]:
    """Listing rows and reject rows for one capture (a `captures` row and its bytes)."""
    entries, rejects = _entries(capture, data)
    capture_id = capture["capture_id"]
    return [{**entry, "listing_id": f"{capture_id}:{entry['position']}", "capture_id": capture_id,
             "captured_at": capture["captured_at"], "source": capture["source"]} for entry in entries], rejects


def _entries(capture: dict, data: bytes) -> tuple[list[dict], list[dict]]:
    """The listing fields of each entry of a capture that parsed (with its `position` among the
    page's entries), and reject rows for the others."""
    capture_id = capture["capture_id"]
    if capture["format"] == TOO_LARGE:
        return [], [{"capture_id": capture_id, "position": None, "stage": "parse", "rule": TOO_LARGE,
                     "message": f"{capture['origin']}: {capture['n_bytes']} bytes, over the size limit; not stored",
                     "excerpt": None}]
    fmt = _BY_NAME.get(capture["format"])
    text = decode(data)
    if fmt is None or text is None:
        why = "bytes that are not UTF-8 or UTF-16 text" if text is None else _unknown(text)
        rule = "undecodable" if text is None else "unknown_format"
        return [], [{"capture_id": capture_id, "position": None, "stage": "parse", "rule": rule,
                     "message": f"{capture['origin']}: {why}",
                     "excerpt": excerpt(text if text is not None else repr(data[:200]))}]
    params = capture.get("params")
    ctx = ParseContext(capture["captured_at"], capture.get("origin") or "",
                       json.loads(params) if isinstance(params, str) else (params or {}), capture.get("source") or "")
    entries, rejects = [], []
    for position, entry in enumerate(fmt.parse(text, ctx)):
        if isinstance(entry, Reject):
            rejects.append({"capture_id": capture_id, "position": None if entry.whole_page else position,
                            "stage": "parse",
                            "rule": entry.rule, "message": entry.message, "excerpt": entry.excerpt})
        else:
            entry["position"] = position  # (each entry a parser yields is a dict of its own)
            entries.append(entry)
    return entries, rejects


def to_frames(listings: list[dict], rejects: list[dict]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Listing and reject rows as `listings` and `rejects` frames, title keys computed per column."""
    frame = schema.conform(listings, {k: v for k, v in schema.LISTINGS.items() if k != "title_key"})
    return _with_title_keys(frame), schema.conform(rejects, schema.REJECTS)


def _with_title_keys(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(title_key=title_key_expr()).select(list(schema.LISTINGS))


def parse_captures(captures: pl.DataFrame, data_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`listings` and `rejects` for every capture, read back from the raw store (no network), on
    every core when there are many."""
    frames = list(parse_chunks(captures, data_dir)) or [to_frames([], [])]
    return pl.concat([f[0] for f in frames]), pl.concat([f[1] for f in frames])


def parse_chunks(captures: pl.DataFrame, data_dir: Path) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """`listings` and `rejects` of one chunk of captures after another, in order, as the workers
    finish them (the caller can work on a chunk while the next ones are parsed). Rows become
    columns a chunk at a time, so memory holds Python objects for one chunk only."""
    return workers.map_chunks(partial(_parse_chunk, data_dir), captures.to_dicts())


# What a listing takes from its capture rather than from its entry.
_FROM_CAPTURE = ("capture_id", "captured_at", "source")


def _parse_chunk(data_dir: Path, captures: list[dict]) -> tuple[pl.DataFrame, pl.DataFrame]:
    entries, rejects, counts = [], [], []
    for capture in captures:
        data = (data_dir / capture["raw_path"]).read_bytes() if capture["raw_path"] else b""
        rows, bad = _entries(capture, data)
        entries.extend(rows)
        rejects.extend(bad)
        counts.append(len(rows))
    # The capture's fields are repeated by column, not copied into every entry's row: a time of
    # capture per row made a third of building the frame (the chunk's parse 15 % faster).
    # The columns are read from the schema as it is now, so that a column added to it is a column
    # of every chunk.
    from_entry = {c: t for c, t in schema.LISTINGS.items() if c not in {*_FROM_CAPTURE, "listing_id", "title_key"}}
    owners = schema.conform([{c: capture[c] for c in _FROM_CAPTURE} for capture in captures],
                            {c: schema.LISTINGS[c] for c in _FROM_CAPTURE})
    frame = pl.concat([schema.conform(entries, from_entry), owners[np.repeat(np.arange(len(captures)), counts)]],
                      how="horizontal")
    frame = frame.with_columns(listing_id=pl.concat_str("capture_id", pl.lit(":"), "position"))
    return _with_title_keys(frame), schema.conform(rejects, schema.REJECTS)
