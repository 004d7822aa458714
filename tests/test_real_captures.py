"""The formats as the Hub served them over two years, on real captures made by others (copied into
`tests/real/`): every item of every undamaged daily file is one listing carrying its API fields;
the damaged files are whole-page rejects that say why; a papers page and a paper's own page parse."""

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from bench.render import api_item
from pipeline import parse
from pipeline.parse.common import arxiv_id

REAL = Path(__file__).resolve().parent / "real"
DAILY = sorted(REAL.glob("daily_papers_*.json"))
DAMAGED = {"daily_papers_2024-12-23.json": "a list of str", "daily_papers_2025-01-10.json": "an object with keys"}
CAPTURED = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


def parsed(path: Path, source: str | None = None, params: dict | None = None):
    data = path.read_bytes()
    fmt = parse.detect(data)
    capture = {"capture_id": "c", "format": fmt, "source": source or parse.source_of(fmt), "origin": path.name,
               "captured_at": CAPTURED, "params": json.dumps(params or {})}
    listings, rejects = parse.to_frames(*parse.parse_capture(capture, data))
    return fmt, listings, rejects


def test_the_real_captures_are_here():
    assert len(DAILY) == 10 and (REAL / "papers-page-2024-08-01.html").exists()


@pytest.mark.parametrize("path", [p for p in DAILY if p.name not in DAMAGED], ids=lambda p: p.name)
def test_every_item_of_a_daily_file_is_one_listing_with_its_api_fields(path):
    items = json.loads(path.read_text(), parse_float=Decimal)
    fmt, listings, rejects = parsed(path)
    assert fmt == "api_items" and rejects.is_empty() and listings.height == len(items)
    for item, row in zip(items, listings.iter_rows(named=True)):
        paper = item["paper"]
        assert row["arxiv_id"] == str(paper["id"])
        assert row["title"] == " ".join(paper["title"].split())
        assert row["upvotes"] == paper.get("upvotes")
        assert row["comments"] == item.get("numComments")
        assert row["author_count"] == (len(paper["authors"]) or None)
        assert row["published_on"] == dt.datetime.fromisoformat(paper["publishedAt"]).date()
        assert row["ai_summary"] == (" ".join(paper["ai_summary"].split()) if paper.get("ai_summary") else None)
        assert row["github_stars"] == paper.get("githubStars")
        submitted = paper.get("submittedOnDailyAt")
        assert row["daily_date"] == (dt.datetime.fromisoformat(submitted).date() if submitted else None)


def test_a_fetched_day_is_the_daily_date_of_its_items_and_a_search_has_none():
    path = REAL / "daily_papers_2025-03-17.json"
    _, fetched, _ = parsed(path, "hf_daily_api", {"date": "2025-03-17", "p": 0})
    assert fetched["daily_date"].unique().to_list() == [dt.date(2025, 3, 17)]
    _, searched, _ = parsed(path, "hf_search_api", {"q": "agents"})
    assert searched["daily_date"].null_count() == searched.height


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_a_damaged_daily_file_is_one_reject_that_says_why(name):
    fmt, listings, rejects = parsed(REAL / name)
    assert fmt == "unknown" and listings.is_empty()
    (reject,) = rejects.iter_rows(named=True)
    assert reject["position"] is None and reject["rule"] == "unknown_format" and DAMAGED[name] in reject["message"]


def test_the_papers_page_parses():
    fmt, listings, rejects = parsed(REAL / "papers-page-2024-08-01.html")
    assert fmt == "html" and rejects.is_empty() and listings.height == 13
    assert listings["daily_date"].unique().to_list() == [dt.date(2024, 8, 1)]
    assert "2407.21783" in listings["arxiv_id"].to_list()


def test_a_paper_s_own_page_is_one_listing():
    fmt, listings, rejects = parsed(REAL / "paperpage-2509.24002-prettified.html")
    assert (fmt, parse.source_of(fmt), rejects.height) == ("paper_page", "hf_html", 0)
    (row,) = listings.iter_rows(named=True)
    assert row["arxiv_id"] == "2509.24002"
    assert row["title"] == "MCPMark: A Benchmark for Stress-Testing Realistic and Comprehensive MCP Use"
    assert (row["upvotes"], row["github_stars"], row["published_on"], row["daily_date"]) == (
        118, 182, dt.date(2025, 9, 28), dt.date(2025, 10, 1))
    assert row["project_page"] == "https://mcpmark.ai/" and row["github_repo"] == "https://github.com/eval-sys/mcpmark"
    assert row["ai_summary"].startswith("MCPMark is a comprehensive benchmark")


@pytest.mark.parametrize("given, canonical, version", [
    ("2401.00001", "2401.00001", None),
    ("2401.00001v2", "2401.00001", 2),
    ("arXiv:2401.00001v3", "2401.00001", 3),
    ("arxiv:2401.00001", "2401.00001", None),
    (" 2401.12345 ", "2401.12345", None),
    ("math.AG/0309136", "math/0309136", None),
    ("math.AG/0309136v1", "math/0309136", 1),
    ("hep-th/9901001", "hep-th/9901001", None),
    ("cond-mat.str-el/0501001v2", "cond-mat/0501001", 2),
])
def test_arxiv_ids_are_canonical_and_keep_their_version(given, canonical, version):
    assert arxiv_id(given) == (canonical, version)


def test_two_versions_of_one_paper_are_one_paper(tmp_path):
    from pipeline import dedup

    first = api_item({"title": "A Versioned Paper", "abstract": "The first version of it.",
                      "arxiv_id": "2401.00001", "published_on": dt.date(2024, 1, 1)})
    second = api_item({"title": "A Versioned Paper, Revised", "abstract": "The second version, rewritten a lot.",
                       "arxiv_id": "arXiv:2401.00001v2", "published_on": dt.date(2024, 1, 1)})
    rows = []
    for i, items in enumerate(([first], [second])):
        path = tmp_path / f"{i}.json"
        path.write_text(json.dumps(items))
        rows.append(parsed(path)[1].with_columns(listing_id=pl.lit(f"c{i}:0"), capture_id=pl.lit(f"c{i}"),
                                                 captured_at=pl.lit(CAPTURED + dt.timedelta(days=i))))
    listings = pl.concat(rows)
    assert listings["arxiv_id"].to_list() == ["2401.00001", "2401.00001"]
    assert listings["arxiv_version"].to_list() == [None, 2]
    assert dedup.resolve(listings).papers.height == 1


def test_a_control_character_in_one_title_spoils_nothing_else(tmp_path):
    items = [api_item({"title": f"Paper {i}", "abstract": "Fine.", "arxiv_id": f"2605.0000{i}",
                       "published_on": dt.date(2026, 5, 1)}) for i in range(3)]
    text = json.dumps(items).replace("Paper 1", "Paper\\u0000 1").replace("Paper 2", "Paper\x00 2")
    path = tmp_path / "day.json"
    path.write_text(text)  # one escaped NUL, one raw NUL byte
    fmt, listings, rejects = parsed(path)
    assert fmt == "api_items" and rejects.is_empty()
    assert listings["title"].to_list() == ["Paper 0", "Paper 1", "Paper 2"]


def test_prefixed_and_old_style_ids_pass_the_contract(tmp_path):
    from pipeline import validate

    items = [api_item({"title": title, "abstract": "A.", "arxiv_id": given, "published_on": dt.date(2004, 1, 1)})
             for title, given in (("Prefixed", "arXiv:2401.00001v2"), ("Old style", "math.AG/0309136"),
                                  ("Old, versioned", "hep-th/9901001v3"))]
    path = tmp_path / "day.json"
    path.write_text(json.dumps(items))
    _, listings, _ = parsed(path)
    assert listings["arxiv_id"].to_list() == ["2401.00001", "math/0309136", "hep-th/9901001"]
    assert listings["arxiv_version"].to_list() == [2, None, 3]
    report = validate.validate(listings, "listings", "listing_id", only=validate.QUARANTINE)
    assert report.failed == []
