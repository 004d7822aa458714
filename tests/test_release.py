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
    # (and the papers' file once more: the same rows, published as they were, not encoded again)
    assert [path.split("/")[1] for path in read] == ["papers", "sightings", "papers"]
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


def test_a_release_lets_go_of_the_previous_version_once_it_is_compared():
    # (at a million listings the previous papers are 0.7 GB, which encoding the new files then uses)
    papers = schema.conform([paper("a", "A", 1)], schema.PAPERS)
    tables = {"papers": papers, "sightings": schema.empty(schema.SIGHTINGS), "aliases": schema.empty(schema.ALIASES)}
    now = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
    first = release.prepare(tables, schema.empty(schema.CAPTURES), None, [], "", now)
    read = []
    previous = release.Tables(json.loads(first.files["manifest.json"]), lambda path: read.append(path) or first.files[path])
    bumped = {**tables, "papers": papers.with_columns(upvotes=pl.lit(2, pl.Int32))}
    second = release.prepare(bumped, schema.empty(schema.CAPTURES), previous, [first.version], "", now)
    assert second.changes["change"].to_list() == ["changed"] and len(read) == 1
    assert previous["papers"].equals(papers) and len(read) == 2  # read again when asked: it was not held


def test_a_table_in_its_published_order_is_kept_in_that_order_in_one_chunk():
    day = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    rows = [{**paper(f"p{n}", "T", 1), "first_seen_at": day + dt.timedelta(days=n // 2)} for n in range(6)]
    shards = [schema.conform(rows[:4], schema.PAPERS), schema.conform(rows[4:], schema.PAPERS)]
    read_back = release.canonical("papers", pl.concat(shards))  # as a version's shards are read: two chunks
    assert read_back["paper_id"].to_list() == [r["paper_id"] for r in rows] and read_back.n_chunks() == 1
    shuffled = release.canonical("papers", pl.concat(shards[::-1]))
    assert shuffled["paper_id"].to_list() == [r["paper_id"] for r in rows]


def test_news_lands_in_the_last_shard_and_the_shards_before_it_are_published_as_they_were(monkeypatch):
    monkeypatch.setitem(release.SHARD_ROWS, "papers", 3)
    day = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)

    def seen(pid: str, n: int, upvotes: int = 1) -> dict:  # first seen on day n, published years before
        return {**paper(pid, pid.upper(), upvotes), "first_seen_at": day + dt.timedelta(days=n),
                "published_on": dt.date(2020, 1, 1) + dt.timedelta(days=(7 * n) % 11)}

    def tables(rows: list[dict]) -> dict[str, pl.DataFrame]:
        return {"papers": schema.conform(rows, schema.PAPERS), "sightings": schema.empty(schema.SIGHTINGS),
                "aliases": schema.empty(schema.ALIASES)}

    encoded = []
    monkeypatch.setattr(release, "parquet_bytes", lambda frame, encode=release.parquet_bytes: encoded.append(
        frame.height) or encode(frame))
    papers = [seen(f"p{n}", n) for n in range(7)]
    first = release.prepare(tables(papers), schema.empty(schema.CAPTURES), None, [], "", day)
    manifest = json.loads(first.files["manifest.json"])

    def shard(files: dict, i: int, n: int) -> list[str]:
        return pl.read_parquet(files[f"data/papers/train-{i:05d}-of-{n:05d}.parquet"])["paper_id"].to_list()

    assert [shard(first.files, i, 3) for i in range(3)] == [["p0", "p1", "p2"], ["p3", "p4", "p5"], ["p6"]]
    encoded.clear()
    news = papers + [seen("p8", 8), seen("p7", 7)]
    second = release.prepare(tables(news), schema.empty(schema.CAPTURES), release.Tables(manifest, first.files.get),
                             [first.version], "", day + dt.timedelta(days=9))
    assert [shard(second.files, i, 3) for i in range(3)] == [["p0", "p1", "p2"], ["p3", "p4", "p5"], ["p6", "p7", "p8"]]
    for i in (0, 1):  # the same bytes, not encoded again
        path = f"data/papers/train-{i:05d}-of-00003.parquet"
        assert second.files[path] == first.files[path]
    assert sorted(encoded) == [2, 3]  # the last shard of papers, and the changes (two papers added)
    assert second.changes["paper_id"].to_list() == ["p7", "p8"]

    # a paper of the first shard changed: that shard is encoded again, with its new value
    encoded.clear()
    bumped = [seen("p1", 1, upvotes=5) if p["paper_id"] == "p1" else p for p in news]
    third = release.prepare(tables(bumped), schema.empty(schema.CAPTURES),
                            release.Tables(json.loads(second.files["manifest.json"]), second.files.get),
                            [first.version, second.version], "", day + dt.timedelta(days=9))
    assert sorted(encoded) == [1, 3]
    upvotes = pl.read_parquet(third.files["data/papers/train-00000-of-00003.parquet"])["upvotes"].to_list()
    assert upvotes == [1, 5, 1]
    kept = "data/papers/train-00001-of-00003.parquet"
    assert third.files[kept] == second.files[kept]


def test_a_version_published_in_another_order_is_encoded_again_whole(monkeypatch):
    # (as by code that sorted the papers by publication date: its files do not hold the shards now made)
    monkeypatch.setitem(release.SHARD_ROWS, "papers", 2)
    day = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    rows = [{**paper(f"p{n}", f"P{n}", 1), "first_seen_at": day + dt.timedelta(days=n),
             "published_on": dt.date(2020, 1, 10 - n)} for n in range(4)]
    tables = {"papers": schema.conform(rows, schema.PAPERS), "sightings": schema.empty(schema.SIGHTINGS),
              "aliases": schema.empty(schema.ALIASES)}
    monkeypatch.setitem(release.ORDER, "papers", ["published_on", "paper_id"])
    first = release.prepare(tables, schema.empty(schema.CAPTURES), None, [], "", day)
    monkeypatch.setitem(release.ORDER, "papers", ["first_seen_at", "paper_id"])
    bumped = {**tables, "sightings": schema.conform([{"listing_id": "c:0", "paper_id": "p0", "captured_at": day}],
                                                    schema.SIGHTINGS)}
    second = release.prepare(bumped, schema.empty(schema.CAPTURES),
                             release.Tables(json.loads(first.files["manifest.json"]), first.files.get),
                             [first.version], "", day)
    for i, expected in enumerate([["p0", "p1"], ["p2", "p3"]]):
        path = f"data/papers/train-{i:05d}-of-00002.parquet"
        assert pl.read_parquet(second.files[path])["paper_id"].to_list() == expected
        assert second.files[path] != first.files[path]


def test_a_version_of_another_schema_version_is_encoded_again(monkeypatch):
    monkeypatch.setitem(release.SHARD_ROWS, "papers", 2)
    day = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    rows = [{**paper(f"p{n}", f"P{n}", 1), "first_seen_at": day + dt.timedelta(days=n)} for n in range(3)]
    tables = {"papers": schema.conform(rows, schema.PAPERS), "sightings": schema.empty(schema.SIGHTINGS),
              "aliases": schema.empty(schema.ALIASES)}
    first = release.prepare(tables, schema.empty(schema.CAPTURES), None, [], "", day)
    manifest = json.loads(first.files["manifest.json"])
    news = {**paper("p3", "P3", 1), "first_seen_at": day + dt.timedelta(days=3)}
    grown = {**tables, "papers": schema.conform(rows + [news], schema.PAPERS)}
    encoded = []
    monkeypatch.setattr(release, "parquet_bytes", lambda frame, encode=release.parquet_bytes: encoded.append(
        frame.height) or encode(frame))
    for version, expected in ((manifest["schema_version"], [1, 2]), (manifest["schema_version"] - 1, [1, 2, 2])):
        encoded.clear()  # (the first shard, p0 and p1, is the previous version's only in its own schema version)
        release.prepare(grown, schema.empty(schema.CAPTURES), release.Tables({**manifest, "schema_version": version},
                        first.files.get), [first.version], "", day)
        assert sorted(encoded) == expected  # the changes (one paper added), the last shard, and the first if encoded


def test_a_shard_is_written_a_row_group_at_a_time_in_the_bytes_one_write_of_it_gives(monkeypatch):
    """A shard is handed to Arrow a row group at a time (to hold one row group's copy, not the
    shard's), and its file is the one a single write of the whole shard gives, so that a version
    encoded either way publishes the same bytes."""
    import io

    import pyarrow.parquet as pq

    monkeypatch.setattr(release, "ROW_GROUP_ROWS", 40)
    rows = [{**paper(f"p{i:03d}", f"Title {i} " + "word " * (i % 7), i if i % 3 else None), "n_sightings": i % 4 + 1,
             "authors": [f"A{j}" for j in range(i % 3)], "first_seen_at": dt.datetime(2026, 1, 1 + i % 28, tzinfo=dt.timezone.utc)}
            for i in range(100)]
    frame = schema.conform(rows, schema.PAPERS)
    data = release.parquet_bytes(frame)
    whole = frame.to_arrow()
    whole = whole.replace_schema_metadata({schema.VERSION_KEY.encode(): str(schema.SCHEMA_VERSION).encode()})
    expected = io.BytesIO()
    pq.write_table(whole, expected, compression="zstd", write_statistics=True, row_group_size=40,
                   use_content_defined_chunking=True)
    assert data == expected.getvalue()
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [40, 40, 20]
    assert pl.read_parquet(io.BytesIO(data)).equals(frame)
