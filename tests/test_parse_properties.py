"""Property-based tests: random (and hostile) entries rendered into each layout parse back to the same
values; arbitrary bytes never crash a parser and every entry is accounted for."""

import datetime as dt
import json

from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline import parse
from pipeline.normalize import clean_text
from bench.render import api_item, block_page, compact_page, html_page
from conftest import SAMPLE_FILES

CAPTURED = dt.date(2026, 5, 7)
NOW = dt.datetime(2026, 5, 7, 12, tzinfo=dt.timezone.utc)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any characters but NUL (a page with NUL is binary) and lone surrogates (not encodable).
chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
hostile = st.sampled_from(["May 7", "Oct 3, 2024", "Apr 16 2", "• 3 authors", "  • 12 authors", "·",
                           "Daily Papers", "Subscribe", "$\\alpha$-Net: \\% of {Fr\\'echet}",
                           "../../etc/passwd", "<script>alert(1)</script>", "“quotes” & 'more'",
                           "https://example.org/a?b=c", "日本語のタイトル", "x" * 5000])
text = st.one_of(hostile, st.text(chars, min_size=1, max_size=300))
title = text.filter(lambda t: clean_text(t) is not None)
abstract = st.one_of(st.none(), st.just(""), text)
handle = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,30}", fullmatch=True)


@st.composite
def block_entries(draw):
    e = {"title": clean_text(draw(title)), "abstract": clean_text(draw(abstract) or ""),
         "published_on": draw(st.dates(dt.date(1990, 1, 1), CAPTURED)),
         "upvotes": draw(st.one_of(st.none(), st.integers(0, 10**6)))}
    if draw(st.booleans()):
        e["organization"], e["organization_name"] = draw(handle), clean_text(draw(st.one_of(st.none(), text)) or "")
    else:
        e["author_count"] = draw(st.integers(0, 10_000))
    return e


def parsed(data: bytes, **capture):
    fmt = parse.detect(data)
    row = {"capture_id": "c", "format": fmt, "source": parse.source_of(fmt), "origin": "f",
           "captured_at": NOW, "params": "{}", **capture}
    return parse.parse_capture(row, data)


@FAST
@given(st.lists(block_entries(), min_size=1, max_size=8))
def test_block_layout_round_trip(entries):
    listings, rejects = parsed(block_page(entries, CAPTURED).encode())
    assert rejects == []
    assert len(listings) == len(entries)
    for got, want in zip(listings, entries):
        assert got["title"] == want["title"]
        assert got["abstract"] == (want["abstract"] or None)
        assert got["published_on"] == want["published_on"]
        assert got["upvotes"] == want["upvotes"]
        assert got["author_count"] == want.get("author_count")
        assert got["organization"] == want.get("organization")
        assert got["organization_name"] == (want.get("organization_name") or None)


@FAST
@given(st.lists(st.tuples(title, abstract), min_size=1, max_size=8), st.booleans())
def test_compact_layout_round_trip(pairs, final_newline):
    entries = [{"title": clean_text(t), "abstract": clean_text(a or "")} for t, a in pairs]
    listings, rejects = parsed(compact_page(entries, final_newline).encode())
    assert rejects == []
    assert [(r["title"], r["abstract"]) for r in listings] == [(e["title"], e["abstract"] or None) for e in entries]


@st.composite
def api_entries(draw):
    return {"title": draw(title), "abstract": draw(abstract),
            "arxiv_id": draw(st.from_regex(r"\d{4}\.\d{4,5}0", fullmatch=True)),
            "authors": draw(st.lists(title, max_size=5)),
            "published_on": draw(st.dates(dt.date(1990, 1, 1), CAPTURED)),
            "upvotes": draw(st.one_of(st.none(), st.integers(0, 10**6))),
            "comments": draw(st.integers(0, 1000))}


@FAST
@given(st.lists(api_entries(), max_size=6), st.booleans())
def test_api_and_html_round_trip(entries, as_html):
    items = [api_item(e) for e in entries]
    data = html_page(items, "2026-05-07") if as_html else json.dumps(items)
    listings, rejects = parsed(data.encode(), params=json.dumps({"date": "2026-05-07"}))
    assert rejects == []
    assert len(listings) == len(entries)
    for got, want in zip(listings, entries):
        assert got["title"] == clean_text(want["title"])
        assert got["abstract"] == clean_text(want["abstract"] or "")
        assert got["arxiv_id"] == want["arxiv_id"]
        assert got["authors"] == ([clean_text(a) for a in want["authors"]] or None)
        assert got["author_count"] == (len(want["authors"]) or None)
        assert (got["published_on"], got["upvotes"], got["comments"]) == (
            want["published_on"], want["upvotes"], want["comments"])


def accounted(data: bytes):
    """No crash, and every entry of the page is one listing or one reject (positions 0..n-1)."""
    listings, rejects = parsed(data)
    positions = sorted([r["position"] for r in listings] + [r["position"] for r in rejects if r["position"] is not None])
    assert positions == list(range(len(positions)))
    whole = [r for r in rejects if r["position"] is None]
    assert len(whole) <= 1 and not (whole and whole[0]["rule"] in ("unknown_format", "undecodable") and listings)
    return listings, rejects


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_fuzz_arbitrary_bytes(data):
    accounted(data)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(SAMPLE_FILES), st.integers(0, 10**6), st.binary(max_size=16), st.sampled_from(
    ["utf-8", "latin-1", "utf-16", "cp1252"]))
def test_fuzz_damaged_samples(path, cut, junk, encoding):
    text = path.read_text(encoding="utf-8")
    data = text.encode(encoding, errors="replace")
    cut %= len(data)
    accounted(data[:cut] + junk + data[cut:cut + 500])
