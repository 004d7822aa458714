import datetime as dt

import polars as pl

from pipeline import schema
from pipeline.dedup import resolve
from pipeline.parse import to_frames

UTC = dt.timezone.utc


def listing(n, title, captured, **fields):
    return {"listing_id": f"c{n}:0", "capture_id": f"c{n}", "position": 0, "title": title,
            "captured_at": dt.datetime(*captured, tzinfo=UTC), "source": "text_capture", **fields}


def test_merge_policy_per_column():
    rows = [
        listing(1, "Widgets: A Study", (2026, 1, 1), abstract="old abstract", upvotes=3, author_count=2,
                published_on=dt.date(2025, 12, 1), published_on_basis="explicit"),
        listing(2, "widgets - a study", (2026, 1, 5), abstract="new abstract", upvotes=None,
                arxiv_id="2501.01230", published_on=dt.date(2025, 12, 2), published_on_basis="year_inferred"),
        listing(3, "WIDGETS: a study", (2026, 1, 3), abstract=None, upvotes=7, organization="org",
                published_on=dt.date(2025, 12, 1), published_on_basis="explicit"),
        listing(4, "Another paper", (2026, 1, 2), abstract="x", author_count=1),
    ]
    listings, _ = to_frames(rows, [])
    papers, sightings = resolve(listings)
    assert papers.height == 2 and sightings.height == 4
    p = papers.filter(pl.col("n_sightings") == 3).row(0, named=True)
    assert p["title"] == "widgets - a study"          # latest sighting's
    assert p["abstract"] == "new abstract"            # latest that has one
    assert p["arxiv_id"] == "2501.01230"              # from any sighting that has it
    assert p["upvotes"] == 7                          # latest capture that showed upvotes
    assert p["published_on"] == dt.date(2025, 12, 1)  # an explicit year beats an inferred one
    assert p["author_count"] == 2 and p["organization"] == "org"
    assert p["first_seen_at"] == dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert p["last_seen_at"] == dt.datetime(2026, 1, 5, tzinfo=UTC)
    assert p["sources"] == ["text_capture"]
    history = sightings.filter(pl.col("paper_id") == p["paper_id"]).sort("captured_at")["upvotes"].to_list()
    assert history == [3, 7, None]
    assert papers.schema == pl.Schema(schema.PAPERS)


def test_ids_do_not_depend_on_order_or_other_papers():
    rows = [listing(1, "Alpha", (2026, 1, 1), abstract="a"), listing(2, "Beta", (2026, 1, 2), abstract="b")]
    first, _ = resolve(to_frames(rows, [])[0])
    second, _ = resolve(to_frames(rows[::-1][:1], [])[0])
    assert first.filter(pl.col("title") == "Beta")["paper_id"].item() == second["paper_id"].item()
