"""The JSON API, HTML and compact-text parsers, and choosing a parser by content."""

import datetime as dt
import json

import polars as pl
import pytest

from pipeline import parse
from pipeline.parse import api_json, text_compact
from pipeline.parse.common import ParseContext, Reject
from bench.render import api_item, compact_page, html_page
from conftest import ROOT, SAMPLE_FILES

NOW = dt.datetime(2026, 3, 7, 12, tzinfo=dt.timezone.utc)
SAMPLE_ITEM = (ROOT / "samples" / "api" / "daily_papers_item_2602.23229.json").read_text()


def capture(data: bytes, origin="x", params=None):
    fmt = parse.detect(data)
    row = {"capture_id": "c", "format": fmt, "source": parse.source_of(fmt), "origin": origin,
           "captured_at": NOW, "params": json.dumps(params or {})}
    return parse.parse_capture(row, data)


def test_real_daily_papers_item():
    (e,) = api_json.parse_items(SAMPLE_ITEM, ParseContext(NOW))
    assert e["arxiv_id"] == "2602.23229"
    assert e["title"] == "Large Multimodal Models as General In-Context Classifiers"
    assert e["abstract"].startswith("Which multimodal model should we use for classification?")
    assert e["authors"] == ["Marco Garosi", "Matteo Farina", "Alessandro Conti", "Massimiliano Mancini", "Elisa Ricci"]
    assert e["author_count"] == 5
    assert (e["organization"], e["organization_name"]) == ("MHUGLab", "Multimedia and Human Understanding Group")
    assert (e["published_on"], e["published_on_basis"]) == (dt.date(2026, 2, 26), "api")
    assert (e["upvotes"], e["comments"]) == (10, 1)
    assert e["github_repo"] == "https://github.com/marco-garosi/CIRCLE"
    assert e["project_page"] == "https://circle-lmm.github.io/"
    assert "in-context learning" in e["ai_keywords"]


def test_daily_array_flat_paper_and_ids_as_strings():
    item = json.loads(SAMPLE_ITEM)
    array = json.dumps([item, item]).replace('"id": "2602.23229"', '"id": 2503.02130')
    listings, rejects = capture(array.encode())
    assert not rejects and [r["arxiv_id"] for r in listings] == ["2503.02130", "2503.02130"]
    flat = json.dumps(item["paper"]).encode()
    assert parse.detect(flat) == "api_paper"
    listings, _ = capture(flat)
    assert listings[0]["arxiv_id"] == "2602.23229" and listings[0]["source"] == "hf_paper_api"
    assert listings[0]["comments"] is None  # the flat object has no numComments


def test_missing_optional_and_unknown_fields():
    item = {"paper": {"id": "2501.00001", "title": "Only a title", "brandNewField": {"x": 1}}, "alsoNew": 3}
    (e,) = api_json.parse_items(json.dumps([item]), ParseContext(NOW))
    assert e["title"] == "Only a title"
    assert all(e[k] is None for k in ("abstract", "authors", "author_count", "upvotes", "comments",
                                      "published_on", "organization", "github_repo", "ai_keywords"))


@pytest.mark.parametrize("paper, rule", [
    ({"id": "1", "title": "T", "upvotes": -3}, "bad_field"),
    ({"id": "1", "title": "T", "upvotes": "many"}, "bad_field"),
    ({"id": "1", "title": 42}, "bad_field"),
    ({"id": "1", "title": "T", "authors": "Ann"}, "bad_field"),
    ({"id": "1", "title": "T", "publishedAt": "yesterday"}, "bad_field"),
    ({"id": "1", "title": "   "}, "missing_title"),
])
def test_wrong_types_are_rejects(paper, rule):
    good = {"paper": {"id": "2", "title": "Fine"}}
    listings, rejects = capture(json.dumps([good, {"paper": paper}, "not an item"]).encode())
    assert [r["title"] for r in listings] == ["Fine"]
    assert [(r["position"], r["rule"]) for r in rejects] == [(1, rule), (2, "bad_item")]


def test_compact_layout_from_the_issue():
    text = ("Get trending papers in your email inbox once a day!\nGet trending papers in your email inbox!\n"
            "SubscribeSparse Widgets for Dense Retrieval\n"
            "We study widgets. Our method improves recall by 3 points on two benchmarks.\n"
            "A Second Paper: With a Colon in Its Title\nAbstract of the second paper, on a single line.")
    for data in (text, text + "\n"):
        listings, rejects = capture(data.encode())
        assert not rejects
        assert [(r["title"], r["abstract"]) for r in listings] == [
            ("Sparse Widgets for Dense Retrieval", "We study widgets. Our method improves recall by 3 points on two benchmarks."),
            ("A Second Paper: With a Colon in Its Title", "Abstract of the second paper, on a single line."),
        ]
        assert all(r.get(k) is None for r in listings for k in ("published_on", "authors", "upvotes"))


def test_compact_odd_line_is_a_reject():
    page = compact_page([{"title": "One", "abstract": "A"}]) + "Dangling title"
    assert [e.rule if isinstance(e, Reject) else e["title"]
            for e in text_compact.parse(page, ParseContext(NOW))] == ["One", "missing_abstract"]


def test_html_page_reads_the_hydration_json():
    items = [api_item({"title": 'Quotes "and" <tags> & more', "abstract": "Abs.", "arxiv_id": "2603.00001",
                       "published_on": dt.date(2026, 3, 5), "upvotes": 0, "authors": ["A B"]}),
             json.loads(SAMPLE_ITEM)]
    page = html_page(items, "2026-03-06")
    listings, rejects = capture(page.encode(), origin="https://huggingface.co/papers/date/2026-03-06")
    assert not rejects
    assert [r["title"] for r in listings] == ['Quotes "and" <tags> & more',
                                              "Large Multimodal Models as General In-Context Classifiers"]
    assert listings[0]["upvotes"] == 0 and listings[0]["source"] == "hf_html"
    search = html_page(items[:1], "2026-03-06", key="searchResults")
    assert len(capture(search.encode(), origin="https://huggingface.co/papers?q=widgets")[0]) == 1


def test_html_page_of_another_date_gives_no_listings():
    page = html_page([json.loads(SAMPLE_ITEM)], "2026-03-06")
    listings, rejects = capture(page.encode(), params={"date": "2026-03-08"})
    assert listings == []
    assert [(r["rule"], r["position"]) for r in rejects] == [("date_mismatch", None)]
    assert "2026-03-08" in rejects[0]["message"] and "1 entries" in rejects[0]["message"]


@pytest.mark.parametrize("page, rule", [
    ("<!doctype html><html><body><p>We changed the site</p></body></html>", "missing_payload"),
    ('<!doctype html><div data-props="{&quot;dailyPapers&quot;: {&quot;a&quot;: 1}}"></div>', "payload_shape"),
    ("<!doctype html>" + "<div>" * 5000 + "deep" + "</span>" * 10, "missing_payload"),
])
def test_html_page_without_a_usable_payload_is_one_reject(page, rule):
    listings, rejects = capture(page.encode())
    assert listings == [] and [r["rule"] for r in rejects] == [rule]


def test_parser_is_chosen_by_content_not_name(tmp_path):
    assert parse.detect(SAMPLE_FILES[0].read_bytes()) == "text_block"
    assert parse.detect(SAMPLE_ITEM.encode()) == "api_items"
    assert parse.detect(compact_page([{"title": "T", "abstract": "A"}]).encode()) == "text_compact"
    assert parse.detect(html_page([], "2026-01-01").encode()) == "html"
    listings, _ = capture(SAMPLE_FILES[0].read_bytes(), origin="misleading.json")
    assert len(listings) == 43


def test_a_page_read_once_as_text_gives_the_format_and_day_its_bytes_give():
    # (importing a folder decodes each page once, for its format and its day both)
    page = SAMPLE_FILES[0].read_text(encoding="utf-8").replace("\n", "\r\n")
    for data in (page.encode("utf-8-sig"), page.encode("utf-16")):  # (each with its byte order mark)
        text = parse.decode(data)
        assert text is not None and parse.detect(text) == parse.detect(data) == "text_block"
        assert parse.page_day("text_block", text) == parse.page_day("text_block", data) is not None
    assert parse.decode(b"\x89PNG\r\n\x1a\n\x00") is None and parse.detect(None) == parse.UNKNOWN
    assert parse.page_day("text_block", None) is None


@pytest.mark.parametrize("data, rule", [
    (b"just some notes\nabout nothing\n", "unknown_format"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "undecodable"),
    ("caf\xe9 latin-1".encode("latin-1"), "undecodable"),
    (b"", "unknown_format"),
])
def test_unrecognised_pages_are_one_reject(data, rule):
    listings, rejects = capture(data)
    assert listings == [] and [(r["rule"], r["position"]) for r in rejects] == [(rule, None)]


def test_utf16_with_bom_is_read():
    data = SAMPLE_FILES[1].read_text(encoding="utf-8").encode("utf-16")
    assert len(capture(data)[0]) == 45


@pytest.mark.parametrize("text, compact", [
    ("{0}\n{1}\nTitle\nAbstract\n", True),
    ("{0}\r\n{1}\r\nTitle\r\nAbstract", True),
    (" {0} \r{1}  ", True),
    ("{0}\n\n{1}\nTitle\nAbstract\n", False),  # the header is the first two lines, not any two
    ("{0}", False),
    ("Title\n{0}\n{1}\n", False),
])
def test_the_compact_layout_is_told_by_its_first_two_lines(text, compact):
    page = text.format(*text_compact.HEADER)
    assert text_compact.looks_like(page) is compact


def test_captures_parsed_together_give_each_listing_its_own_capture(tmp_path):
    # (a chunk of captures sets the capture's fields by column; each row must still get its own)
    entries = [{"title": f"Paper {i}", "abstract": f"Abstract {i}."} for i in range(5)]
    pages = [
        compact_page(entries[:3]).encode(),
        b"\xff\xfe\x00\xd8 not text",  # one reject for the whole page, no listing
        json.dumps([api_item({"title": "From the API", "abstract": "A.", "arxiv_id": "2603.00007",
                              "published_on": dt.date(2026, 3, 5)}), "not an item"]).encode(),
        compact_page([]).encode(),  # no entry at all
        compact_page(entries[3:]).encode(),
    ]
    captures = []
    for n, data in enumerate(pages):
        fmt = parse.detect(data)
        (tmp_path / f"page{n}").write_bytes(data)
        captures.append({"capture_id": f"c{n}", "format": fmt, "source": ["src_a", "src_b"][n % 2],
                         "origin": f"page{n}", "params": "{}", "n_bytes": len(data), "raw_path": f"page{n}",
                         "captured_at": NOW + dt.timedelta(hours=n)})
    listings, rejects = parse.parse_captures(pl.DataFrame(captures), tmp_path)

    by_id = {c["capture_id"]: c for c in captures}
    rows = listings.to_dicts()
    assert [r["title"] for r in rows] == ["Paper 0", "Paper 1", "Paper 2", "From the API", "Paper 3", "Paper 4"]
    assert [(r["capture_id"], r["position"]) for r in rows] == [("c0", 0), ("c0", 1), ("c0", 2), ("c2", 0),
                                                                ("c4", 0), ("c4", 1)]
    for r in rows:
        assert r["listing_id"] == f"{r['capture_id']}:{r['position']}"
        assert (r["captured_at"], r["source"]) == (by_id[r["capture_id"]]["captured_at"],
                                                   by_id[r["capture_id"]]["source"])
    assert sorted((r["capture_id"], r["position"], r["rule"]) for r in rejects.to_dicts()) == [
        ("c1", None, "undecodable"), ("c2", 1, "bad_item")]
    # one capture at a time, as the CLI's `parse` command does it, gives the same rows
    alone = [parse.to_frames(*parse.parse_capture(c, (tmp_path / c["raw_path"]).read_bytes()))[0] for c in captures]
    assert listings.equals(pl.concat(alone))
