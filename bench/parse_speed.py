"""Parsing speed per format: the same generated entries rendered into each layout and parsed back.

    python -m bench.parse_speed [--listings 20000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time

from bench import corpus, render
from pipeline import parse

CAPTURED = dt.datetime(2026, 5, 7, tzinfo=dt.timezone.utc)
PER_PAGE = 100


def pages(fmt: str, entries: list[dict]) -> list[bytes]:
    out = []
    for start in range(0, len(entries), PER_PAGE):
        chunk = entries[start:start + PER_PAGE]
        if fmt == "text_block":
            text = render.block_page(chunk, CAPTURED.date())
        elif fmt == "text_compact":
            text = render.compact_page(chunk)
        elif fmt == "api_items":
            text = json.dumps([render.api_item(e) for e in chunk])
        else:
            text = render.html_page([render.api_item(e) for e in chunk], CAPTURED.date().isoformat())
        out.append(text.encode())
    return out


def measure(n: int) -> dict:
    rows = corpus.listings_corpus(n, seed=3).to_dicts()
    entries = [{**r, "published_on": min(r["published_on"], CAPTURED.date()),
                "author_count": r["author_count"] or 1} for r in rows]
    result = {}
    for fmt in ("text_block", "text_compact", "api_items", "html"):
        data = pages(fmt, entries)
        start = time.perf_counter()
        parsed = 0
        for i, page in enumerate(data):
            capture = {"capture_id": f"c{i}", "format": parse.detect(page), "source": "bench", "origin": "",
                       "captured_at": CAPTURED, "params": "{}"}
            listings, rejects = parse.parse_capture(capture, page)
            parsed += len(listings)
            assert not rejects, rejects[:1]
        seconds = time.perf_counter() - start
        result[fmt] = {"listings": parsed, "seconds": round(seconds, 3), "listings_per_second": round(parsed / seconds)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listings", type=int, default=20_000)
    print(json.dumps(measure(parser.parse_args().listings), indent=2))


if __name__ == "__main__":
    main()
