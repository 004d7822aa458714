"""Write, audit, publish: every stage commits only what its suite passed, every release reads only
audited tables and never removes papers unasked, and ordinary days (an empty day, a lost table, a
killed release, a moved data directory, a hostile page) never stop the pipeline or shrink a table."""

import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager

import dagster as dg
import polars as pl
import pytest

from assets.definitions import ALL_ASSETS, defs
from assets.resources import DataDirResource, ReleaseTargetResource
from assets.stages import release_snapshot
from bench.render import block_page
from conftest import SAMPLE_FILES
from pipeline import normalize, parse, stages, validate
from pipeline.parse import html_page
from pipeline.parse.common import ParseContext
from pipeline.paths import DataDir
from pipeline.publish import LocalGitTarget

PAPERS = [sys.executable, "-m", "assets.cli"]


def resources(data_dir):
    return {"datadir": DataDirResource(data_dir=str(data_dir)), "release_target": ReleaseTargetResource()}


def materialize(data_dir, captures, assets=ALL_ASSETS, **kw) -> dg.ExecuteInProcessResult:
    return dg.materialize(assets, resources=resources(data_dir), raise_on_error=False,
                          run_config={"ops": {"captures": {"config": {"captures_dir": str(captures)}}}}, **kw)


def cli(args, data_dir, **extra_env) -> subprocess.CompletedProcess:
    env = {**os.environ, "PAPERS_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(data_dir / "dagster"), **extra_env}
    return subprocess.run(PAPERS + args, capture_output=True, text=True, env=env, timeout=300)


def checks(result) -> dict:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def part_bytes(folder) -> dict:
    return {part.name: part.read_bytes() for part in folder.glob("*.parquet")}


def one_line(stderr: str) -> str:
    """The message a refused command printed for its user: exactly one line naming the cause."""
    lines = [line for line in stderr.splitlines() if line.startswith("papers")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def later_page(title: str, published: dt.date, captured: dt.date) -> str:
    return block_page([{"title": title, "abstract": f"The abstract of {title}.", "author_count": 2,
                        "published_on": published, "upvotes": 3}], captured)


@contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging the suite) if the block has not finished after `seconds`; a linear
    parser needs a small fraction of it."""
    def expire(*_):
        raise TimeoutError(f"not finished after {seconds} s")
    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_an_empty_day_is_parsed_once_and_never_fails(data_dir, captures_copy):
    (captures_copy / "2026-05-09.json").write_text("[]")  # a weekend: the API answers an empty list
    empty_id = hashlib.sha256(b"[]").hexdigest()
    listings = None
    for attempt in range(3):
        result = materialize(data_dir, captures_copy)
        assert result.success, attempt
        assert all(c.passed for c in checks(result).values()), attempt
        now = {p.name: p.read_bytes() for p in (data_dir / "tables" / "listings").iterdir()}
        assert listings in (None, now)  # nothing new after the first run: the table stays as it is
        listings = now
    parsed = pl.read_parquet(data_dir / "tables" / "parsed" / "*.parquet")
    assert parsed.filter(pl.col("capture_id") == empty_id).select("listings", "rejects").row(0) == (0, 0)
    assert parsed.height == len(SAMPLE_FILES) + 1


def test_a_run_with_nothing_new_neither_reads_nor_checks_nor_writes_the_tables_again(data_dir, captures_copy,
                                                                                      monkeypatch):
    from pipeline import dedup, store

    assert materialize(data_dir, captures_copy).success

    def tables() -> dict:  # (but the record of files found verified, which a commit brings up to date)
        return {p: p.read_bytes() for p in (data_dir / "tables").rglob("*") if p.is_file() and p.name != store.VERIFIED}

    files = tables()
    ledger = json.loads((data_dir / "tables" / "ledger.json").read_text())
    manifest = json.loads((data_dir / "releases" / "manifest.json").read_text())
    # the version says which stored files it was made from
    assert manifest["made_from"] == {name: [part["sha256"] for part in ledger[name]["parts"]] if name == "papers"
                                     else [ledger[name]["sha256"]] for name in ("papers", "sightings", "aliases")}
    reads, work = [], []
    read_table = store.read_table
    monkeypatch.setattr(store, "read_table", lambda d, name, *a, **k: reads.append(name) or read_table(d, name, *a, **k))
    monkeypatch.setattr(store, "scan_parts", lambda d, name, only: reads.append(name))
    monkeypatch.setattr(dedup, "resolve", lambda *a, **k: work.append("resolve"))
    monkeypatch.setattr(validate.Validator, "run", lambda *a, **k: work.append("validate"))

    result = materialize(data_dir, captures_copy)
    assert result.success and work == []
    assert sorted(reads) == ["captures", "parsed"]  # what tells that nothing is new
    assert tables() == files
    # the checks report the tables as their audit found them, rule by rule
    table_rules = [e for e in validate.load_suite("listings")["expectations"] if e["meta"]["on_failure"] == "block"]
    found = checks(result)
    assert found["listings_contract"].passed and found["papers_contract"].passed
    assert found["listings_contract"].metadata["expectations"].value == len(table_rules)
    assert found["papers_contract"].metadata["expectations"].value == len(validate.load_suite("papers")["expectations"])
    release = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "release"]
    assert release[0].materialization.metadata["published"].value is False


def test_a_run_with_nothing_new_shows_the_charts_drawn_of_the_same_files(data_dir, captures_copy, monkeypatch):
    from pipeline import charts

    def shown(result) -> dict:
        (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "papers"]
        return event.materialization.metadata

    def papers_sha256() -> str:
        parts = json.loads((data_dir / "tables" / "ledger.json").read_text())["papers"]["parts"]
        return ",".join(part["sha256"] for part in parts)

    instance = dg.DagsterInstance.ephemeral()  # the runs' history, where the charts shown before are
    first = materialize(data_dir, captures_copy, instance=instance)
    assert first.success and shown(first)["files_sha256"].value == papers_sha256()
    drawn = []
    bars = charts.bars
    monkeypatch.setattr(charts, "bars", lambda labels, values, title, ylabel: drawn.append(title)
                        or bars(labels, values, title, ylabel))
    again = materialize(data_dir, captures_copy, instance=instance)
    assert again.success and drawn == []
    for name in ("papers_per_day", "upvotes", "files_sha256"):
        assert shown(again)[name] == shown(first)[name], name
    # papers that changed are drawn again
    (captures_copy / "later.txt").write_text(later_page("A Paper Of A Later Day", dt.date(2026, 6, 1),
                                                        dt.date(2026, 6, 2)))
    later = materialize(data_dir, captures_copy, instance=instance)
    assert later.success and shown(later)["files_sha256"].value == papers_sha256() != shown(first)["files_sha256"].value
    assert "Papers per day (last 60 days)" in drawn and "Papers by upvotes" in drawn
    assert shown(later)["papers_per_day"] != shown(first)["papers_per_day"]


@pytest.mark.parametrize("suite", ["listings", "papers"])
def test_a_changed_suite_audits_the_tables_again_though_nothing_is_new(data_dir, captures_copy, tmp_path,
                                                                       monkeypatch, suite):
    assert materialize(data_dir, captures_copy).success
    blocking_row_count(suite, 1, tmp_path, monkeypatch)  # the samples give more than one row
    result = materialize(data_dir, captures_copy)
    check = checks(result)[f"{suite}_contract"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "expect_table_row_count_to_be_between" in check.metadata["blocking_failures"].value
    assert "release" not in {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}


def stricter_papers_suite(tmp_path, monkeypatch):
    """An operator tightens the papers contract: no paper may have more than 2 upvotes, a blocking
    rule (`later_page` gives its paper 3)."""
    suites = tmp_path / "expectations"
    shutil.copytree(validate.SUITES_DIR, suites)
    spec = json.loads((suites / "papers.json").read_text())
    spec["expectations"].append({"type": "expect_column_values_to_be_between",
                                 "kwargs": {"column": "upvotes", "max_value": 2}, "meta": {"on_failure": "block"}})
    (suites / "papers.json").write_text(json.dumps(spec))
    monkeypatch.setattr(validate, "SUITES_DIR", suites)


def test_a_failed_audit_commits_nothing_and_no_release_follows(data_dir, captures_copy, tmp_path, monkeypatch):
    assert materialize(data_dir, captures_copy).success
    tables = data_dir / "tables"
    papers_before, ledger_before = part_bytes(tables / "papers"), json.loads((tables / "ledger.json").read_text())
    tags = LocalGitTarget(data_dir / "releases").tags()
    (captures_copy / "later.txt").write_text(later_page("A Paper Of A Later Day", dt.date(2026, 6, 1), dt.date(2026, 6, 2)))
    stricter_papers_suite(tmp_path, monkeypatch)

    result = materialize(data_dir, captures_copy)
    check = checks(result)["papers_contract"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert part_bytes(tables / "papers") == papers_before  # audited before the write: not written
    ledger = json.loads((tables / "ledger.json").read_text())
    for name in stages.RESOLVED_TABLES:
        assert ledger[name] == ledger_before[name]
    # the listings passed their own suite and were committed
    assert "A Paper Of A Later Day" in pl.read_parquet(tables / "listings" / "*.parquet")["title"].to_list()
    assert "release" not in {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    # re-publishing by hand makes no version of the unaudited papers either
    with dg.DagsterInstance.ephemeral() as instance:
        job = defs.resolve_job_def("release_job").execute_in_process(
            instance=instance, raise_on_error=False, resources=resources(data_dir))
    assert job.success  # the audited papers are the ones already released: nothing to publish
    assert LocalGitTarget(data_dir / "releases").tags() == tags


def blocking_row_count(suite: str, most: int, tmp_path, monkeypatch) -> None:
    """The suites as they are, but `suite` with a blocking rule that its table has at most `most` rows."""
    suites = tmp_path / "expectations"
    shutil.copytree(validate.SUITES_DIR, suites)
    spec = json.loads((suites / f"{suite}.json").read_text())
    spec["expectations"].append({"type": "expect_table_row_count_to_be_between", "kwargs": {"max_value": most},
                                 "meta": {"on_failure": "block"}})
    (suites / f"{suite}.json").write_text(json.dumps(spec))
    monkeypatch.setattr(validate, "SUITES_DIR", suites)


def test_listings_a_table_rule_refuses_leave_no_part_behind_and_come_next_time(data_dir, captures_copy, tmp_path,
                                                                               monkeypatch):
    """The new listings are written as parts before the table-level rules run: when a rule blocks,
    those parts are removed, the table stays as it was, and a later run parses the captures again."""
    assert materialize(data_dir, captures_copy).success
    tables = data_dir / "tables"
    listings_before = sorted(p.read_bytes() for p in (tables / "listings").glob("*"))
    ledger_before = json.loads((tables / "ledger.json").read_text())
    (captures_copy / "later.txt").write_text(later_page("A Paper Of A Later Day", dt.date(2026, 6, 1), dt.date(2026, 6, 2)))
    blocking_row_count("listings", ledger_before["listings"]["rows"], tmp_path, monkeypatch)  # no listing more
    stages.capture(DataDir(data_dir), captures_copy)

    refused = stages.parse_new(DataDir(data_dir))

    assert not refused.committed and refused.new_listings == 1
    assert [o.rule for o in refused.report.blocking_failures] == ["expect_table_row_count_to_be_between"]
    assert sorted(p.read_bytes() for p in (tables / "listings").glob("*")) == listings_before  # no staged part left
    assert json.loads((tables / "ledger.json").read_text())["listings"] == ledger_before["listings"]
    monkeypatch.undo()

    again = stages.parse_new(DataDir(data_dir))

    assert again.committed and again.parsed == 1
    assert "A Paper Of A Later Day" in again.listings.collect()["title"].to_list()


def test_records_written_before_the_papers_audit_leave_no_part_when_it_refuses(data_dir, captures_copy, tmp_path,
                                                                              monkeypatch):
    """The records a resolve signs are written as a part while it makes the papers, before the
    papers suite runs: when the suite blocks, that part is removed and the resolver's tables stay
    as they were; the next resolve commits the new record."""
    assert materialize(data_dir, captures_copy).success
    tables, d = data_dir / "tables", DataDir(data_dir)
    records_before = sorted(p.read_bytes() for p in (tables / "records").iterdir())
    ledger_before = json.loads((tables / "ledger.json").read_text())
    title = "A Paper Of A Later Day"
    (captures_copy / "later.txt").write_text(later_page(title, dt.date(2026, 6, 1), dt.date(2026, 6, 2)))
    stages.capture(d, captures_copy)
    assert stages.parse_new(d).committed
    blocking_row_count("papers", ledger_before["papers"]["rows"], tmp_path, monkeypatch)  # no paper more
    staged_at_audit = []
    audit = validate.validate

    def watched(frame, suite, *args, **kwargs):
        if suite == "papers":
            staged_at_audit.extend(pl.read_parquet(p) for p in (tables / "records").glob(".staged-*.pending"))
        return audit(frame, suite, *args, **kwargs)

    monkeypatch.setattr(validate, "validate", watched)

    refused = stages.resolve(d, LocalGitTarget(d.releases))

    assert not refused.committed
    assert [o.rule for o in refused.report.blocking_failures] == ["expect_table_row_count_to_be_between"]
    assert [part["title_key"].to_list() for part in staged_at_audit] == [[normalize.title_key(title)]]
    assert sorted(p.read_bytes() for p in (tables / "records").iterdir()) == records_before  # no staged part left
    assert json.loads((tables / "ledger.json").read_text())["records"] == ledger_before["records"]
    monkeypatch.undo()

    again = stages.resolve(d, LocalGitTarget(d.releases))

    assert again.committed
    records = pl.read_parquet(tables / "records" / "*.parquet")
    assert normalize.title_key(title) in records["title_key"].to_list()
    assert records.height == ledger_before["records"]["rows"] + 1


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A data directory after a good run and release of the sample pages."""
    root = tmp_path_factory.mktemp("released")
    data, folder = root / "data", root / "captures"
    shutil.copytree(SAMPLE_FILES[0].parent, folder)
    assert materialize(data, folder).success
    return data, folder


def damage(data_dir, how: str) -> None:
    tables = data_dir / "tables"
    if how == "deleted":  # `rm -rf data/tables`
        shutil.rmtree(tables)
    else:  # a table edited outside the pipeline: half the papers gone
        part = sorted((tables / "papers").glob("*.parquet"))[0]
        papers = pl.read_parquet(part)
        papers.head(papers.height // 2).write_parquet(part)


@pytest.mark.parametrize("how", ["deleted", "edited"])
def test_every_entry_point_refuses_to_release_unaudited_tables(released, tmp_path, monkeypatch, how):
    data_dir = tmp_path / "data"
    shutil.copytree(released[0], data_dir)
    damage(data_dir, how)
    monkeypatch.setenv("PAPERS_DATA_DIR", str(data_dir))
    repo = LocalGitTarget(data_dir / "releases")
    head, tags = repo.head(), repo.tags()
    expected = "has no audited commit" if how == "deleted" else "is not the file its commit wrote"

    # the asset
    asset = dg.materialize([release_snapshot], resources=resources(data_dir), raise_on_error=False)
    (failure,) = [e for e in asset.all_events if e.is_step_failure]
    assert expected in failure.step_failure_data.error.message
    # the job, as the UI launches it (resources from the Definitions)
    with dg.DagsterInstance.ephemeral() as instance:
        job = defs.resolve_job_def("release_job").execute_in_process(instance=instance, raise_on_error=False)
        assert not job.success
    # the command line, a dry run included
    for command in (["publish"], ["publish", "--dry-run"]):
        done = cli(command, data_dir)
        assert done.returncode == 1 and expected in one_line(done.stderr), command
    assert (repo.head(), repo.tags()) == (head, tags)
    # automation: new captures arrive and the daemon runs what the conditions request; a run that
    # would build on the edited table fails, and a rebuilt one equals what is published already
    with dg.DagsterInstance.ephemeral() as instance:
        cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
        assert dg.materialize([ALL_ASSETS[0]], instance=instance, resources=resources(data_dir)).success
        evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        requested = [r.key for r in evaluation.results if r.true_subset.size]
        assert dg.AssetKey("release") in requested
        auto = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=requested, raise_on_error=False)
        assert auto.success == (how == "deleted")
    assert (repo.head(), repo.tags()) == (head, tags)


def test_a_release_that_would_remove_papers_is_refused_unless_allowed(released, tmp_path):
    # A fresh data directory, pointed at the published repository, given only one of the pages.
    data_dir, folder = tmp_path / "data", tmp_path / "one_page"
    shutil.copytree(released[0] / "releases", data_dir / "releases")
    folder.mkdir()
    shutil.copy(SAMPLE_FILES[0], folder)
    repo = LocalGitTarget(data_dir / "releases")
    head, tags = repo.head(), repo.tags()
    before = json.loads(repo.read("manifest.json", head))["row_counts"]["papers"]

    refused = cli(["run", "--captures", str(folder)], data_dir)
    assert refused.returncode == 1
    kept = pl.read_parquet(data_dir / "tables" / "papers" / "*.parquet").height
    assert f"would remove {before - kept:,} of the {before:,} papers" in one_line(refused.stderr)
    assert (repo.head(), repo.tags()) == (head, tags)

    allowed = cli(["publish", "--allow-removals"], data_dir)
    assert allowed.returncode == 0, allowed.stderr
    assert len(repo.tags()) == len(tags) + 1
    changelog = (data_dir / "releases" / "CHANGELOG.md").read_text()
    assert f"The operator allowed this version to remove {before - kept:,} of the {before:,} papers" in changelog


def test_a_dry_run_writes_nothing_anywhere(released, tmp_path):
    empty = tmp_path / "nothing_yet"
    done = cli(["publish", "--dry-run"], empty)
    assert done.returncode == 1 and "nothing to publish; run `papers run` first" in one_line(done.stderr)
    assert not empty.exists()

    data_dir, folder = tmp_path / "data", tmp_path / "captures"
    shutil.copytree(released[0], data_dir)
    shutil.copytree(released[1], folder)
    (folder / "later.txt").write_text(later_page("A Paper Of June", dt.date(2026, 6, 1), dt.date(2026, 6, 2)))
    d = DataDir.resolve(data_dir)  # every stage but the release
    stages.capture(d, folder, dt.datetime(2026, 6, 2, 9, tzinfo=dt.timezone.utc))
    stages.parse_new(d)
    stages.resolve(d, LocalGitTarget(d.releases))
    files = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in data_dir.rglob("*") if p.is_file()}
    done = cli(["publish", "--dry-run"], data_dir, DAGSTER_HOME=str(tmp_path / "unused"))
    assert done.returncode == 0, done.stderr
    uploads = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("  upload ")}
    assert uploads == {"data/papers/train-00000-of-00001.parquet", "data/sightings/train-00000-of-00001.parquet",
                       "data/changes/train-00000-of-00001.parquet", "README.md", "CHANGELOG.md", "manifest.json",
                       "papers_per_month.png"}
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in data_dir.rglob("*") if p.is_file()} == files
    assert not (tmp_path / "unused").exists()


def test_the_git_locks_a_killed_release_leaves_are_cleared(released, tmp_path):
    from dulwich.objects import Blob

    data_dir, folder = tmp_path / "data", tmp_path / "captures"
    shutil.copytree(released[0], data_dir)
    shutil.copytree(released[1], folder)
    (folder / "later.txt").write_text(later_page("A Paper Of June", dt.date(2026, 6, 1), dt.date(2026, 6, 2)))
    d = DataDir.resolve(data_dir)
    stages.capture(d, folder)
    stages.parse_new(d)
    stages.resolve(d, LocalGitTarget(d.releases))
    uploads, _ = stages.release_tables(d, LocalGitTarget(d.releases), dt.datetime.now(dt.timezone.utc),
                                       dry_run=True).plan
    # What a release killed while writing its objects and moving `main` leaves behind.
    git = data_dir / "releases" / ".git"
    locks = [git / "refs" / "heads" / "main.lock"]
    for data in uploads.values():
        sha = Blob.from_string(data).id.decode()
        locks.append(git / "objects" / sha[:2] / f"{sha[2:]}.lock")
    for lock in locks:
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_bytes(b"")
    tags = LocalGitTarget(d.releases).tags()
    done = cli(["publish"], data_dir)
    assert done.returncode == 0, done.stderr
    assert len(LocalGitTarget(d.releases).tags()) == len(tags) + 1
    assert not any(lock.exists() for lock in locks)


def test_a_hostile_page_costs_linear_time_and_the_good_pages_beside_it_are_parsed(data_dir, tmp_path):
    hostile = "<!doctype html><div " + "data-props " * (1024 * 1024 // 11)  # 1 MB, no closing `>`
    ctx = ParseContext(dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc))
    with deadline(30):
        (reject,) = list(html_page.parse(hostile, ctx))
    assert reject.rule == "missing_payload"
    folder = tmp_path / "captures"
    folder.mkdir()
    (folder / "hostile.html").write_text(hostile)
    shutil.copy(SAMPLE_FILES[0], folder)
    with deadline(300):
        assert materialize(data_dir, folder).success
    listings = pl.read_parquet(data_dir / "tables" / "listings" / "*.parquet")
    good_id = hashlib.sha256(SAMPLE_FILES[0].read_bytes()).hexdigest()
    assert listings.filter(pl.col("capture_id") == good_id).height == len(
        [e for e in parse.FORMATS[-1].parse(SAMPLE_FILES[0].read_text(), ctx) if isinstance(e, dict)])


def test_a_lost_captures_table_comes_back_whole(released, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(released[0], data_dir)
    before = pl.read_parquet(data_dir / "tables" / "captures.parquet")
    (data_dir / "tables" / "captures.parquet").unlink()
    folder = tmp_path / "today"  # the next run imports another folder
    folder.mkdir()
    (folder / "later.txt").write_text(later_page("A Paper Of June", dt.date(2026, 6, 1), dt.date(2026, 6, 2)))
    assert materialize(data_dir, folder).success
    after = pl.read_parquet(data_dir / "tables" / "captures.parquet")
    assert set(before["capture_id"]) < set(after["capture_id"])
    assert after.join(before, on="capture_id", how="semi").equals(before)


def test_a_damaged_table_is_named_and_a_full_refresh_rebuilds_it(released, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(released[0], data_dir)
    parts = data_dir / "tables" / "listings" / "*.parquet"
    before = pl.read_parquet(parts)
    (listings,) = (data_dir / "tables" / "listings").glob("*.parquet")
    listings.write_bytes(listings.read_bytes()[:1000])  # a truncated copy
    done = cli(["run", "--captures", str(released[1])], data_dir)
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert f"{listings} is damaged" in line and "papers run --full-refresh" in line
    rebuilt = cli(["run", "--captures", str(released[1]), "--full-refresh"], data_dir)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert pl.read_parquet(parts).equals(before)
    assert "(unchanged)" in rebuilt.stdout  # the same data as the published version


def test_a_copied_data_directory_answers_queries_at_once(released, tmp_path, capsys, monkeypatch):
    from assets import cli as papers_cli

    original, copy = tmp_path / "original", tmp_path / "elsewhere" / "data"
    shutil.copytree(released[0], original)
    stages.catalog(DataDir.resolve(original))  # its catalog, written where it was
    shutil.copytree(original, copy)
    shutil.rmtree(original)  # the copy must not need the original
    monkeypatch.setenv("PAPERS_DATA_DIR", str(copy))
    expected = pl.read_parquet(copy / "tables" / "papers" / "*.parquet").height
    assert papers_cli.main(["query", "SELECT count(*) AS n FROM papers"]) == 0
    assert str(expected) in capsys.readouterr().out
    import duckdb  # an analyst opening the catalog from the data directory, as the README says
    monkeypatch.chdir(copy)
    with duckdb.connect("catalog.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM papers").fetchone()[0] == expected


def test_a_killed_run_is_not_left_started(released, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(released[0], data_dir)
    folder = tmp_path / "captures"
    shutil.copytree(released[1], folder)
    (folder / "later.txt").write_text(later_page("A Paper Of June", dt.date(2026, 6, 1), dt.date(2026, 6, 2)))
    killed = cli(["run", "--captures", str(folder)], data_dir, PAPERS_FAULT="commit:resolve:staged")
    assert killed.returncode == -signal.SIGKILL
    assert "fault point commit:resolve:staged: killing process" in killed.stderr
    done = cli(["run", "--captures", str(folder)], data_dir)
    assert done.returncode == 0, done.stderr
    os.environ["DAGSTER_HOME"] = str(data_dir / "dagster")
    try:
        with dg.DagsterInstance.get() as instance:
            statuses = sorted(r.status.value for r in instance.get_runs())
    finally:
        del os.environ["DAGSTER_HOME"]
    assert statuses == ["FAILURE", "SUCCESS"]
