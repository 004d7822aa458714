"""A generated corpus written as capture files, in every format, for the end-to-end benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from bench import corpus, render


def _entry(row: dict) -> dict:
    return {k: row[k] for k in ("title", "abstract", "author_count", "organization", "published_on", "upvotes",
                                "arxiv_id")}


def write_pages(listings: pl.DataFrame, folder: Path) -> int:
    """One file per capture of `listings`, in the format of its source; returns how many files."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for (capture_id,), group in listings.group_by("capture_id", maintain_order=True):
        rows = group.to_dicts()
        source, captured = rows[0]["source"], rows[0]["captured_at"]
        entries = [_entry(r) for r in rows]
        if source == "text_capture":
            for e in entries:  # a saved page shows dates up to its capture only
                e["published_on"] = min(e["published_on"], captured.date())
                if e["author_count"] is None and not e["organization"]:
                    e["author_count"] = 1
            text = render.block_page(entries, captured.date())
            name = f"{capture_id[-12:]}.txt"
        elif source == "hf_html":
            date = captured.date().isoformat()
            text = render.html_page([render.api_item(e) for e in entries], date)
            name = f"{capture_id[-12:]}.html"
        else:
            text = json.dumps([render.api_item(e) for e in entries])
            name = f"{capture_id[-12:]}.json"
        (folder / name).write_text(text, encoding="utf-8")
        n += 1
    return n


def build(n: int, folder: Path, seed: int = 11) -> pl.DataFrame:
    listings = corpus.listings_corpus(n, seed=seed)
    write_pages(listings, folder)
    return listings
