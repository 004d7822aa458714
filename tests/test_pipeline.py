"""The whole asset graph, materialized for real by Dagster into a temporary data directory."""

import datetime as dt
import hashlib
import json
import shutil

import dagster as dg
import duckdb
import polars as pl
import pytest
from dulwich import porcelain

from assets.definitions import ALL_ASSETS
from assets.resources import DataDirResource, ReleaseTargetResource
from pipeline import release, schema, stages, store, validate
from pipeline.paths import DataDir
from pipeline.publish import LocalGitTarget
from bench.render import block_page
from conftest import SAMPLES


def materialize(data_dir, captures_dir=None, full_refresh=False):
    config = {"captures_dir": str(captures_dir or SAMPLES)}
    result = dg.materialize(ALL_ASSETS, resources={"datadir": DataDirResource(data_dir=str(data_dir)), "release_target": ReleaseTargetResource()},
                            run_config={"ops": {"captures": {"config": config},
                                                "parse_captures": {"config": {"full_refresh": full_refresh}},
                                                "resolve_papers": {"config": {"full_refresh": full_refresh}}}})
    assert result.success
    return {e.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()}


@pytest.fixture
def first_run(data_dir):
    return materialize(data_dir)


def test_sample_run_counts(first_run, data_dir):
    assert first_run["captures"]["dagster/row_count"].value == 3
    assert first_run["listings"]["dagster/row_count"].value == 178
    assert first_run["rejects"]["dagster/row_count"].value == 0
    assert first_run["papers"]["dagster/row_count"].value == 165
    assert first_run["release"]["published"].value is True
    papers = pl.read_parquet(data_dir / "tables" / "papers" / "*.parquet")
    assert papers["paper_id"].n_unique() == 165
    assert papers.select(pl.col("title", "abstract", "published_on").null_count()).row(0) == (0, 0, 0)
    assert papers.filter(pl.col("author_count").is_null() & pl.col("organization").is_null()).height == 0
    # upvotes where shown: every paper whose listings showed upvotes has them
    listings = pl.read_parquet(data_dir / "tables" / "listings" / "*.parquet")
    shown = listings.filter(pl.col("upvotes").is_not_null())["title_key"].n_unique()
    assert papers.filter(pl.col("upvotes").is_not_null()).height == shown > 0


def test_capture_times_and_bases(first_run, data_dir):
    captures = pl.read_parquet(data_dir / "tables" / "captures.parquet")
    got = {r["origin"]: (r["captured_at"].date(), r["captured_at_basis"]) for r in captures.iter_rows(named=True)}
    assert got == {
        "000_b32d59d65bae7777.txt": (dt.date(2026, 5, 7), "page_day+printed_years"),
        "001_787c8ed970bce0ee.txt": (dt.date(2026, 2, 6), "page_day+printed_years"),
        "003_2917b069e52b5a1e.txt": (dt.date(2025, 11, 6), "page_day+printed_years"),
    }
    for row in captures.iter_rows(named=True):  # raw bytes kept under their sha256
        import hashlib
        assert hashlib.sha256((data_dir / row["raw_path"]).read_bytes()).hexdigest() == row["capture_id"]


def test_duckdb_views(first_run, data_dir, monkeypatch):
    monkeypatch.chdir(data_dir)  # the views name the tables relative to the data directory
    con = duckdb.connect("catalog.duckdb", read_only=True)
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("captures", "listings", "rejects", "papers", "sightings")}
    assert counts == {"captures": 3, "listings": 178, "rejects": 0, "papers": 165, "sightings": 178}
    per_capture = dict(con.execute("SELECT origin, n_listings FROM captures").fetchall())
    assert per_capture == {"000_b32d59d65bae7777.txt": 43, "001_787c8ed970bce0ee.txt": 45,
                           "003_2917b069e52b5a1e.txt": 90}
    # a paper seen on all three pages has three sightings
    (n,) = con.execute("""SELECT n_sightings FROM papers
                          WHERE title LIKE 'Domain-Specific Risk Minimization%'""").fetchone()
    assert n == 3
    with pytest.raises(duckdb.Error):
        con.execute("DROP VIEW papers")


def test_second_run_changes_nothing(first_run, data_dir):
    before = {p.name: p.read_bytes() for p in (data_dir / "tables").glob("*.parquet")}
    again = materialize(data_dir)
    assert again["release"]["published"].value is False
    assert {p.name: p.read_bytes() for p in (data_dir / "tables").glob("*.parquet")} == before
    assert list(LocalGitTarget(data_dir / "releases").tags()) == [first_run["release"]["version"].value]


def test_incremental_runs_equal_a_full_refresh(first_run, data_dir, captures_copy):
    (captures_copy / "extra.txt").write_text(block_page([
        {"title": "Another New Paper", "abstract": "Text about new things.", "author_count": 1,
         "published_on": dt.date(2026, 6, 1)}], dt.date(2026, 6, 2)), encoding="utf-8")
    materialize(data_dir, captures_copy)
    incremental = tables(data_dir)
    materialize(data_dir, captures_copy, full_refresh=True)
    for name, frame in tables(data_dir).items():
        assert frame.sort(frame.columns[:2]).equals(incremental[name].sort(frame.columns[:2])), name


def test_a_resolve_matches_only_the_listings_added_since(first_run, data_dir, captures_copy, monkeypatch):
    known = pl.read_parquet(data_dir / "tables" / "papers" / "*.parquet").filter(
        pl.col("title") == "CoLiDE: Concomitant Linear DAG Estimation").row(0, named=True)
    (captures_copy / "later.txt").write_text(block_page([  # an old paper listed again, and a new one
        {"title": known["title"], "abstract": known["abstract"], "author_count": 3,
         "published_on": known["published_on"], "upvotes": 41},
        {"title": "A Brand New Paper on Widgets", "abstract": "We study widgets.", "author_count": 2,
         "published_on": dt.date(2026, 6, 1), "upvotes": 5}], dt.date(2026, 6, 3)), encoding="utf-8")
    earlier = store.parts(DataDir.resolve(data_dir), "listings")
    reads = watch_reads(monkeypatch)
    materialize(data_dir, captures_copy)
    monkeypatch.undo()
    added = store.parts(DataDir.resolve(data_dir), "listings")[len(earlier):]
    assert len(added) == 1 and added[0]["rows"] == 2
    # parse reads the listings' ids only (the rules over the whole table: unique ids, the row
    # count; those that judge each row alone read the new rows); resolve scans the earlier parts
    # apart from the new one: it matches the new listings and reads only the earlier rows of the
    # papers they reach
    assert ("listings", ["listing_id"], None) in reads
    assert [(c, o) for n, c, o in reads if n == "listings" and c != validate_columns()] == [
        ("scanned", earlier), ("scanned", added)]
    papers = pl.read_parquet(data_dir / "tables" / "papers" / "*.parquet")
    assert papers.filter(pl.col("paper_id") == known["paper_id"])["upvotes"].to_list() == [41]
    assert papers.filter(pl.col("title") == "A Brand New Paper on Widgets").height == 1
    incremental = tables(data_dir)
    materialize(data_dir, captures_copy, full_refresh=True)
    for name, frame in tables(data_dir).items():
        assert frame.sort(frame.columns[:2]).equals(incremental[name].sort(frame.columns[:2])), name


def test_a_later_listing_is_compared_with_the_stored_abstract_of_a_paper_of_its_title(first_run, data_dir, captures_copy):
    """The state is read without its abstract keys; those of the records a new listing's title
    meets are read from the stored records. A truncated abstract under a known title joins that
    paper (one abstract a prefix of the other); a different abstract under it is another paper."""
    papers = pl.read_parquet(data_dir / "tables" / "papers" / "*.parquet")
    known = papers.filter(pl.col("abstract").str.len_chars() > 600).sort("paper_id").row(0, named=True)
    (captures_copy / "later.txt").write_text(block_page([
        {"title": known["title"], "abstract": known["abstract"][:200] + "...", "author_count": 3,
         "published_on": known["published_on"], "upvotes": 9},
        {"title": known["title"], "abstract": ("Large language models memorise their training data. We measure how "
                                                "much, across scales and domains, and find that duplication drives it."),
         "author_count": 2, "published_on": dt.date(2026, 6, 1), "upvotes": 4}], dt.date(2026, 6, 3)), encoding="utf-8")
    materialize(data_dir, captures_copy)
    listings = pl.read_parquet(data_dir / "tables" / "listings" / "*.parquet").filter(
        pl.col("capture_id").is_in(pl.read_parquet(data_dir / "tables" / "captures.parquet").filter(
            pl.col("origin") == "later.txt")["capture_id"].implode()))
    merges = pl.read_parquet(data_dir / "tables" / "merges.parquet")
    later = merges.join(listings.select("listing_id", "abstract"), on="listing_id")
    assert later.filter(pl.col("abstract").str.ends_with("..."))["paper_id"].item() == known["paper_id"]
    assert "title_key" in merges.filter(pl.col("paper_id") == known["paper_id"])["rule"].to_list()
    apart = later.filter(~pl.col("abstract").str.ends_with("..."))["paper_id"].item()
    assert apart != known["paper_id"] and apart not in papers["paper_id"].to_list()
    incremental = tables(data_dir)
    materialize(data_dir, captures_copy, full_refresh=True)
    for name, frame in tables(data_dir).items():
        assert frame.sort(frame.columns[:2]).equals(incremental[name].sort(frame.columns[:2])), name


def test_a_resolve_after_the_listings_were_parsed_again_reads_them_all(first_run, data_dir, captures_copy, monkeypatch):
    new_paper(captures_copy, "Another New Paper")
    materialize(data_dir, captures_copy)
    before = tables(data_dir)
    directory = DataDir.resolve(data_dir)
    stages.parse_new(directory, full_refresh=True)  # the parts are replaced: not what resolve was made from
    reads = watch_reads(monkeypatch)
    assert stages.resolve(directory, LocalGitTarget(data_dir / "releases")).committed
    # all the parts, as one table: none is taken for listings resolved before
    assert [(c, o) for n, c, o in reads if n == "listings"] == [("scanned", store.parts(directory, "listings"))]
    for name, frame in tables(data_dir).items():
        assert frame.sort(frame.columns[:2]).equals(before[name].sort(frame.columns[:2])), name


def watch_reads(monkeypatch) -> list[tuple]:
    """The store's reads from now on, as (table, columns or "scanned", parts or None); they still read."""
    reads = []
    read_table, scan_parts = store.read_table, store.scan_parts

    def reading(data_dir, name, columns=None, only=None):
        reads.append((name, columns, only))
        return read_table(data_dir, name, columns, only)

    def scanning(data_dir, name, only):
        reads.append((name, "scanned", only))
        return scan_parts(data_dir, name, only)

    monkeypatch.setattr(store, "read_table", reading)
    monkeypatch.setattr(store, "scan_parts", scanning)
    return reads


def validate_columns():
    """What a parse reads of the listings committed: the columns of the rules over the whole table."""
    return validate.columns_read("listings", "listing_id", only=validate.BLOCK, whole_table_only=True)


def tables(data_dir):
    return {name: pl.read_parquet(data_dir / "tables" / (f"{name}/*.parquet" if name in store.PARTED else
                                                         f"{name}.parquet")) for name in schema.TABLES}


def new_paper(captures, title):
    (captures / "extra.txt").write_text(block_page([
        {"title": title, "abstract": "Text about new things, and nothing else.", "author_count": 1,
         "published_on": dt.date(2026, 6, 1)}], dt.date(2026, 6, 2)), encoding="utf-8")


def test_a_run_writes_only_the_records_it_signed(first_run, data_dir, captures_copy):
    records = data_dir / "tables" / "records"
    before = {p.name: p.read_bytes() for p in records.glob("*.parquet")}
    new_paper(captures_copy, "Another New Paper")
    materialize(data_dir, captures_copy)
    after = {p.name: p.read_bytes() for p in records.glob("*.parquet")}
    assert {name: after[name] for name in before} == before
    (added,) = set(after) - set(before)
    merges = pl.read_parquet(data_dir / "tables" / "merges.parquet")
    listing = pl.read_parquet(data_dir / "tables" / "listings" / "*.parquet").filter(pl.col("title") == "Another New Paper")
    assert pl.read_parquet(records / added)["record_id"].to_list() == merges.join(
        listing.select("listing_id"), on="listing_id")["record_id"].to_list()


def test_a_resolve_writes_again_only_the_parts_of_papers_it_changed(data_dir, captures_copy, monkeypatch):
    """The papers are stored by parts: a resolve keeps the files of the parts that hold none of the
    papers it made again, and writes those papers (and the rest of their parts) as new parts; the
    table reads as a full refresh makes it."""
    monkeypatch.setattr(store, "PART_BYTES", 60_000)  # the samples' 300 KB of papers: five or six parts
    materialize(data_dir, captures_copy)
    dd = DataDir.resolve(data_dir)

    def files() -> dict[str, bytes]:
        return {part["file"]: (dd.tables / part["file"]).read_bytes() for part in store.parts(dd, "papers")}

    first, papers = files(), store.read_table(dd, "papers")
    assert len(first) >= 4
    new_paper(captures_copy, "Another New Paper")  # reaches no paper stored
    audits, run = [], validate.Validator.run
    monkeypatch.setattr(validate.Validator, "run", lambda self, frame, added=None: audits.append(
        (self.spec["name"], frame.height, None if added is None else added[self.id_column].to_list(),
         set(frame.columns))) or run(self, frame, added))
    materialize(data_dir, captures_copy)
    second = files()
    assert {name: second[name] for name in first} == first
    (added,) = set(second) - set(first)
    new = pl.read_parquet(dd.tables / added)
    assert new["title"].to_list() == ["Another New Paper"]
    # the papers' audit: the rules over the table (unique paper_id and arxiv_id, the row count) read
    # those columns of every paper, those judged by row the new one
    assert ("papers", papers.height + 1, new["paper_id"].to_list(), {"paper_id", "arxiv_id"}) in audits

    # another paper under a stored paper's title: resolution makes that paper again, as it was,
    # and its part stays as it is
    near = pl.read_parquet(dd.tables / list(first)[0]).filter(pl.col("abstract").is_not_null()).row(0, named=True)
    (captures_copy / "near.txt").write_text(block_page([
        {"title": near["title"], "abstract": "Widgets, gadgets and gizmos, counted by hand in three countries.",
         "author_count": 2, "published_on": dt.date(2026, 6, 1), "upvotes": 2}], dt.date(2026, 6, 2)), encoding="utf-8")
    materialize(data_dir, captures_copy)
    merges = pl.read_parquet(dd.tables / "merges.parquet")
    assert "title_key" not in merges.filter(pl.col("paper_id") == near["paper_id"])["rule"].to_list()
    now = files()
    assert {name: now[name] for name in second} == second
    (other,) = set(now) - set(second)
    assert pl.read_parquet(dd.tables / other).select("title", "abstract").rows() == [
        (near["title"], "Widgets, gadgets and gizmos, counted by hand in three countries.")]
    second, added = now, [added, other]

    # a stored paper listed again, with more upvotes: the part that holds it is written again
    middle = list(first)[len(first) // 2]
    known = pl.read_parquet(dd.tables / middle).filter(pl.col("abstract").is_not_null()).row(0, named=True)
    (captures_copy / "later.txt").write_text(block_page([
        {"title": known["title"], "abstract": known["abstract"], "author_count": 3,
         "published_on": known["published_on"], "upvotes": 1234}], dt.date(2026, 6, 3)), encoding="utf-8")
    materialize(data_dir, captures_copy)
    third = files()
    assert middle not in third
    assert {name: third[name] for name in second if name != middle} == {n: b for n, b in second.items() if n != middle}
    table = store.read_table(dd, "papers")
    assert table.height == papers.height + 2
    assert table.filter(pl.col("paper_id") == known["paper_id"])["upvotes"].to_list() == [1234]
    assert sorted(table["paper_id"]) == sorted([*papers["paper_id"], *pl.read_parquet(
        [dd.tables / name for name in added])["paper_id"]])
    materialize(data_dir, captures_copy, full_refresh=True)
    assert store.read_table(dd, "papers").sort("paper_id").equals(table.sort("paper_id"))


def test_a_data_directory_from_before_papers_were_parts_keeps_its_papers_file_as_the_first_part(
        first_run, data_dir, captures_copy):
    dd = DataDir.resolve(data_dir)
    papers = store.read_table(dd, "papers")
    ledger = json.loads((dd.tables / store.LEDGER).read_text())
    shutil.rmtree(dd.tables / "papers")  # the table as one file, as the ledger knew it then
    papers.write_parquet(dd.table("papers"))
    old = dd.table("papers").read_bytes()
    ledger["papers"] = {"rows": papers.height, "audit": ledger["papers"]["audit"],
                        "sha256": hashlib.sha256(old).hexdigest()}
    (dd.tables / store.LEDGER).write_text(json.dumps(ledger))
    new_paper(captures_copy, "Another New Paper")
    materialize(data_dir, captures_copy)
    assert not dd.table("papers").exists()
    assert (dd.tables / "papers" / "000000.parquet").read_bytes() == old
    assert store.read_table(dd, "papers").height == papers.height + 1
    with store.connect_catalog(dd) as con:
        assert con.execute("SELECT count(*) FROM papers").fetchone()[0] == papers.height + 1


def test_a_data_directory_from_before_records_were_kept_apart_keeps_its_ids(first_run, data_dir, captures_copy):
    # The layout before: keys and signatures in `resolver_state`, no `records` table.
    tables = data_dir / "tables"
    wide = pl.read_parquet(tables / "resolver_state.parquet").join(
        pl.read_parquet(tables / "records" / "*.parquet"), on="record_id")
    wide.write_parquet(tables / "resolver_state.parquet")
    shutil.rmtree(tables / "records")
    ledger = json.loads((tables / "ledger.json").read_text())
    del ledger["records"]
    ledger["resolver_state"]["sha256"] = hashlib.sha256((tables / "resolver_state.parquet").read_bytes()).hexdigest()
    (tables / "ledger.json").write_text(json.dumps(ledger))
    papers = pl.read_parquet(tables / "papers" / "*.parquet").select("paper_id", "title")

    new_paper(captures_copy, "Another New Paper")
    materialize(data_dir, captures_copy)
    now = pl.read_parquet(tables / "papers" / "*.parquet").select("paper_id", "title")
    assert now.join(papers, on="paper_id").height == papers.height  # every paper keeps its id
    assert now.height == papers.height + 1 and "Another New Paper" in now["title"].to_list()
    assert pl.read_parquet(tables / "resolver_state.parquet").columns == list(schema.RESOLVER_STATE)
    assert pl.read_parquet(tables / "records" / "*.parquet").height == wide.height + 1


def test_added_capture_makes_a_new_version_naming_what_changed(first_run, data_dir, captures_copy):
    papers_v1 = pl.read_parquet(data_dir / "tables" / "papers" / "*.parquet")
    known = papers_v1.filter(pl.col("title") == "CoLiDE: Concomitant Linear DAG Estimation").row(0, named=True)
    page = block_page([
        {"title": known["title"], "abstract": known["abstract"], "author_count": 3,
         "published_on": known["published_on"], "upvotes": 41},
        {"title": "A Brand New Paper on Widgets", "abstract": "We study widgets.", "author_count": 2,
         "published_on": dt.date(2026, 6, 1), "upvotes": 5},
    ], dt.date(2026, 6, 3))  # the page's latest printed year is 2023: so is dated 2024-06-03 by the header rule
    (captures_copy / "new_page.txt").write_text(page, encoding="utf-8")
    second = materialize(data_dir, captures_copy)
    assert second["captures"]["new_captures"].value == 1
    captures = pl.read_parquet(data_dir / "tables" / "captures.parquet")
    assert captures.filter(pl.col("origin") == "new_page.txt")["captured_at"].dt.date().to_list() == [dt.date(2024, 6, 3)]
    assert second["release"]["published"].value is True
    v1, v2 = first_run["release"]["version"].value, second["release"]["version"].value
    assert release.version_key(v2) > release.version_key(v1)

    repo = data_dir / "releases"
    changes = pl.read_parquet(repo / "data" / "changes" / "train-00000-of-00001.parquet")
    added = changes.filter(pl.col("change") == "added")
    changed = changes.filter(pl.col("change") == "changed")
    assert added["title"].to_list() == ["A Brand New Paper on Widgets"]
    assert changed["paper_id"].to_list() == [known["paper_id"]]
    # seen now on a daily page dated before its first sighting (2026-05-07): first_seen_at and its
    # first Daily Papers day move back
    assert set(changed["columns"][0]) == {"upvotes", "first_seen_at", "n_sightings", "daily_date"}
    assert changes.filter(pl.col("change") == "removed").height == 0
    changelog = (repo / "CHANGELOG.md").read_text()
    section = changelog.split(f"## {v1} (")[0]
    assert f"## {v2}" in section and "A Brand New Paper on Widgets" in section and known["paper_id"] in section
    assert "### Added: 1" in section and "### Changed: 1" in section and "### Removed: 0" in section
    manifest = json.loads((repo / "manifest.json").read_text())
    assert manifest["version"] == v2 and manifest["row_counts"]["papers"] == 166
    assert len(manifest["captures"]) == 4
    for path, info in manifest["files"].items():
        import hashlib
        assert hashlib.sha256((repo / path).read_bytes()).hexdigest() == info["sha256"]
    assert porcelain.status(str(repo)).unstaged == [] and not any(porcelain.status(str(repo)).staged.values())


def _export(repo_path, tag, dest):
    """The tree of one tagged version, checked out into `dest`."""
    porcelain.clone(str(repo_path), str(dest), branch=tag.encode(), checkout=True)
    return dest


def test_load_dataset_reads_each_version(first_run, data_dir, captures_copy, tmp_path):
    datasets = pytest.importorskip("datasets")
    (captures_copy / "extra.txt").write_text(block_page([
        {"title": "Another New Paper", "abstract": "Text.", "author_count": 1,
         "published_on": dt.date(2026, 6, 1)}], dt.date(2026, 6, 2)), encoding="utf-8")
    second = materialize(data_dir, captures_copy)
    repo = data_dir / "releases"
    v1, v2 = first_run["release"]["version"].value, second["release"]["version"].value
    old = datasets.load_dataset(str(_export(repo, v1, tmp_path / v1)), split="train")
    new = datasets.load_dataset(str(_export(repo, v2, tmp_path / v2)), split="train")
    assert (old.num_rows, new.num_rows) == (165, 166)
    assert "Another New Paper" in new["title"] and "Another New Paper" not in old["title"]
    assert set(old.column_names) == set(pl.read_parquet(data_dir / "tables" / "papers" / "*.parquet").columns)
    sightings = datasets.load_dataset(str(repo), "sightings", split="train")
    assert sightings.num_rows == 179
    # every config each version's card declares loads, with the rows its manifest counts
    from huggingface_hub import DatasetCard

    for version in (v1, v2):
        folder = tmp_path / version
        declared = [c["config_name"] for c in DatasetCard.load(folder / "README.md").data.configs]
        counts = json.loads((folder / "manifest.json").read_text())["row_counts"]
        assert declared == ["papers", "sightings", "changes"]  # no aliases yet: left out, not an empty file
        for config in declared:
            assert datasets.load_dataset(str(folder), config, split="train").num_rows == counts[config], config
    data_files = [p for p in (tmp_path / v2 / "data").rglob("*.parquet")]
    assert len(data_files) <= 10
