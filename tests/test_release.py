import datetime as dt
import json

import polars as pl
import pytest

from pipeline import release, schema


@pytest.mark.parametrize("existing, today, expected", [
    ([], dt.date(2026, 11, 22), "v2026.11.22"),
    (["v2026.11.21"], dt.date(2026, 11, 22), "v2026.11.22"),
    (["v2026.11.22"], dt.date(2026, 11, 22), "v2026.11.22.1"),
    (["v2026.11.22", "v2026.11.22.1", "v2026.11.22.10", "junk"], dt.date(2026, 11, 22), "v2026.11.22.11"),
    (["v2026.11.23"], dt.date(2026, 11, 22), "v2026.11.23.1"),  # the clock went back: still monotonic
])
def test_next_version(existing, today, expected):
    assert release.next_version(existing, today) == expected


def paper(pid, title, upvotes):
    return {"paper_id": pid, "title": title, "upvotes": upvotes, "n_sightings": 1}


def test_diff_names_added_changed_removed_and_columns():
    old = schema.conform([paper("a", "A", 1), paper("b", "B", 2), paper("c", "C", 3)], schema.PAPERS)
    new = schema.conform([paper("a", "A", 1), paper("b", "B!", 5), paper("d", "D", 0)], schema.PAPERS)
    changes = release.diff(old, new)
    got = {(r["paper_id"], r["change"], tuple(r["columns"] or ())) for r in changes.iter_rows(named=True)}
    assert got == {("b", "changed", ("title", "upvotes")), ("c", "removed", ()), ("d", "added", ())}


def test_no_change_prepares_nothing():
    papers = schema.conform([paper("a", "A", 1)], schema.PAPERS)
    sightings = schema.empty(schema.SIGHTINGS)
    captures = schema.empty(schema.CAPTURES)
    now = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
    tables = {"papers": papers, "sightings": sightings, "aliases": schema.empty(schema.ALIASES)}
    first = release.prepare(tables, captures, None, [], "", now)
    assert first is not None and first.version == "v2026.11.22"
    assert release.prepare(tables, captures, tables, [first.version], "", now) is None
    bumped = {**tables, "papers": papers.with_columns(upvotes=pl.lit(2, pl.Int32))}
    second = release.prepare(bumped, captures, tables, [first.version], "", now)
    assert second.version == "v2026.11.22.1" and second.changes["change"].to_list() == ["changed"]


def test_the_previous_version_is_read_only_as_far_as_the_comparison_needs():
    papers = schema.conform([paper("a", "A", 1)], schema.PAPERS)
    sightings = schema.conform([{"listing_id": "c1:0", "paper_id": "a", "captured_at": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)}],
                               schema.SIGHTINGS)
    tables = {"papers": papers, "sightings": sightings, "aliases": schema.empty(schema.ALIASES)}
    now = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
    first = release.prepare(tables, schema.empty(schema.CAPTURES), None, [], "", now)
    manifest = json.loads(first.files["manifest.json"])
    read = []

    def previous():
        return release.Tables(manifest, lambda path: read.append(path) or first.files[path])

    bumped = {**tables, "papers": papers.with_columns(upvotes=pl.lit(2, pl.Int32))}
    assert release.prepare(bumped, schema.empty(schema.CAPTURES), previous(), [first.version], "", now) is not None
    assert [path.split("/")[1] for path in read] == ["papers"]  # the papers differ: that is enough
    read.clear()
    seen_again = {**tables, "sightings": pl.concat([sightings, sightings.with_columns(listing_id=pl.lit("c2:0"))])}
    assert release.prepare(seen_again, schema.empty(schema.CAPTURES), previous(), [first.version], "", now) is not None
    assert [path.split("/")[1] for path in read] == ["papers", "sightings"]
    read.clear()
    assert release.prepare(tables, schema.empty(schema.CAPTURES), previous(), [first.version], "", now) is None
    assert [path.split("/")[1] for path in read] == ["papers", "sightings"]  # (no aliases file: none published)


def test_a_big_version_names_a_hundred_papers_a_kind_and_counts_the_rest():
    papers = schema.conform([paper(f"p{i:04d}", f"Paper {i}", i) for i in range(250)], schema.PAPERS)
    tables = {"papers": papers, "sightings": schema.empty(schema.SIGHTINGS), "aliases": schema.empty(schema.ALIASES)}
    now = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
    first = release.prepare(tables, schema.empty(schema.CAPTURES), None, [], "", now)
    section = first.changelog_section
    assert "### Added: 250" in section and section.count("\n- `p") == 100
    assert "- … and 150 more: the `changes` config of this version lists every one" in section
    assert first.changes.height == 250 and first.counts["changes"] == 250
