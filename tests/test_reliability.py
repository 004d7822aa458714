"""Tests that try to break the pipeline: crashes at every commit point and real kills, concurrent
runs, repeated partitions, hostile captures, SQL that tries to write, and a backfill against a
server that fails at random."""

import datetime as dt
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.definitions import ALL_ASSETS
from assets.resources import DataDirResource, ReleaseTargetResource
from bench.render import api_item, block_page
from conftest import SAMPLE_FILES
import stage_runner
from pipeline import store
from pipeline.paths import DataDir
from pipeline.publish import LocalGitTarget

TABLES = ("captures", "listings", "rejects", "parsed", "papers", "sightings", "merges", "aliases", "resolver_state",
          "records")


def run(data_dir: Path, captures: Path, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    return dg.materialize(ALL_ASSETS, raise_on_error=raise_on_error,
                          resources={"datadir": DataDirResource(data_dir=str(data_dir)),
                                     "release_target": ReleaseTargetResource()},
                          run_config={"ops": {"captures": {"config": {"captures_dir": str(captures)}}}})


def table_bytes(data_dir: Path) -> dict[str, bytes | tuple]:
    """Every table's file (the parts' names and bytes, for a table of parts), and the ledger of
    their commits and audits."""
    tables = data_dir / "tables"
    files = {name: (tables / f"{name}.parquet").read_bytes() for name in TABLES if (tables / f"{name}.parquet").exists()}
    files |= {name: tuple((p.name, p.read_bytes()) for p in sorted((tables / name).glob("*.parquet")))
              for name in store.PARTED if (tables / name).is_dir()}
    return files | {"ledger": (tables / "ledger.json").read_bytes()}


def vouched(entry: dict, data: bytes | tuple) -> bool:
    """The ledger's entry names the file's (or each part's) sha256."""
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest() == entry["sha256"]
    return [(part["file"].split("/")[-1], part["sha256"]) for part in entry["parts"]] == [
        (name, hashlib.sha256(content).hexdigest()) for name, content in data]


def released_data(data_dir: Path) -> tuple[int, dict]:
    """How many versions, and the sha256 of the latest version's data files."""
    target = LocalGitTarget(data_dir / "releases")
    manifest = json.loads(target.read("manifest.json", "main"))
    return len(target.tags()), {p: f["sha256"] for p, f in manifest["files"].items() if p.startswith("data/")}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """`before`: a data directory after one run on one saved page; then a second page arrives.
    `after`: the same directory once the second run went through without trouble."""
    root = tmp_path_factory.mktemp("crash")
    first, second = root / "first", root / "second"
    first.mkdir()
    shutil.copy(SAMPLE_FILES[0], first)
    shutil.copytree(first, second)
    (second / "new.txt").write_text(block_page([
        {"title": "A Paper That Arrives Later", "abstract": "It came on the second day.", "author_count": 2,
         "published_on": dt.date(2026, 6, 1), "upvotes": 4}], dt.date(2026, 6, 2)), encoding="utf-8")
    # a day whose second entry is rejected: the run adds to listings and rejects at once
    (second / "2026-06-02.json").write_text(json.dumps([api_item(
        {"title": "An API Paper Of The Second Day", "abstract": "From the API.", "arxiv_id": "2606.00001",
         "published_on": dt.date(2026, 6, 2), "upvotes": 1}), {"paper": {"id": "2606.00002"}}]))
    before = root / "before"
    run(before, first)
    after = root / "after"
    shutil.copytree(before, after)
    run(after, second)
    assert table_bytes(after)["rejects"] != table_bytes(before)["rejects"]
    return {"before": before, "after": after, "captures": second, "root": root}


def check_torn(work: Path, scenario) -> None:
    """Each table is its old or its new file; the release repository is the old or the new one."""
    old, new = table_bytes(scenario["before"]), table_bytes(scenario["after"])
    files = table_bytes(work)
    ledger = json.loads(files.pop("ledger"))
    for name, data in files.items():
        assert data in (old.get(name), new[name]), f"{name} is neither before nor after"
    # The ledger moves with each stage's commit: whatever stage it is at, it vouches for the files
    # there, once a commit the kill interrupted after its journal is finished (as the next run does).
    if not list(work.glob(".commit-*.json")):
        for name, entry in ledger.items():
            assert vouched(entry, files[name]), f"the ledger is wrong about {name}"
    target = LocalGitTarget(work / "releases")
    assert len(target.tags()) in (1, 2)
    for tag in target.tags():
        assert json.loads(target.read("manifest.json", tag))["version"] == tag


RUNNER = [sys.executable, str(Path(__file__).resolve().parent / "stage_runner.py")]
RELEASE_STEPS = {f"release:{step}" for step in ("objects:before", "objects:after", "ref:after", "checkout:before",
                                                "checkout:after", "tag:before", "tag:after")}


def run_stages(work: Path, captures: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(RUNNER + [str(work), str(captures)], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_a_kill_at_every_commit_point_leaves_before_or_after_and_the_next_run_equals_an_uninterrupted_one(scenario):
    root = scenario["root"]
    # Every fault point a second run passes, from a traced run without faults.
    probe, trace = root / "probe", root / "points.txt"
    shutil.copytree(scenario["before"], probe)
    traced = run_stages(probe, scenario["captures"], PAPERS_FAULT_TRACE=str(trace))
    assert traced.returncode == 0, traced.stderr
    points = list(dict.fromkeys(trace.read_text().split()))
    for label, files in (("captures", ["captures.parquet"]), ("parse", ["listings", "rejects", "parsed"]),
                         ("resolve", ["papers", *(f"{t}.parquet" for t in ("sightings", "merges", "aliases", "resolver_state")),
                                      "records"])):
        for name in [*files, "ledger.json"]:
            assert {f"commit:{label}:{name}:before-move", f"commit:{label}:{name}:after-move"} <= set(points)
    assert RELEASE_STEPS | {"catalog:before-move", "catalog:after-move", "parse:staged", "resolve:staged"} <= set(points)
    expected_tables, expected_release = table_bytes(scenario["after"]), released_data(scenario["after"])
    assert table_bytes(probe) == expected_tables  # the stages alone write what the Dagster run writes

    def kill(i: int, point: str):
        work = root / f"fault{i}"
        shutil.copytree(scenario["before"], work)
        return work, run_stages(work, scenario["captures"], PAPERS_FAULT=point)

    with ThreadPoolExecutor(2) as pool:  # the processes killed, two at a time
        outcomes = list(pool.map(kill, range(len(points)), points))
    for point, (work, killed) in zip(points, outcomes):
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        assert f"fault point {point}: killing process" in killed.stderr, point
        check_torn(work, scenario)
        if point in ("parse:staged", "resolve:staged"):  # killed with the new listings (records) written, not committed
            table = "listings" if point == "parse:staged" else "records"
            assert list((work / "tables" / table).glob(".staged-*.pending")), point
        stage_runner.main(str(work), str(scenario["captures"]))  # the next run, here (it starts faster)
        assert table_bytes(work) == expected_tables, point
        assert not list((work / "tables").rglob("*.pending")), point  # (a part staged for a commit never made)
        assert released_data(work) == expected_release, point


@pytest.mark.slow
def test_a_killed_process_leaves_no_torn_table_and_the_rerun_completes(scenario):
    """The real thing: `papers run` killed with SIGKILL at several moments of its run (fractions of
    an uninterrupted run's time, measured first: a run that ends before its moment is tried again,
    killed earlier)."""
    env_base = {**os.environ, "PAPERS_DATA_DIR": ""}
    expected = table_bytes(scenario["after"])
    command = [sys.executable, "-m", "assets.cli", "run", "--captures", str(scenario["captures"])]

    def env_for(work: Path) -> dict:
        return {**env_base, "PAPERS_DATA_DIR": str(work), "DAGSTER_HOME": str(work / "dagster")}

    def start(work: Path) -> subprocess.Popen:
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(scenario["before"], work)
        return subprocess.Popen(command, env=env_for(work), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    began = time.monotonic()
    assert start(scenario["root"] / "uninterrupted").wait(300) == 0
    whole = time.monotonic() - began
    assert table_bytes(scenario["root"] / "uninterrupted") == expected
    for i, share in enumerate((0.3, 0.45, 0.6, 0.75)):
        work = scenario["root"] / f"killed{i}"
        for attempt in range(4):
            delay = whole * share * 0.8 ** attempt
            process = start(work)
            time.sleep(delay)
            if process.poll() is None:
                break
        assert process.poll() is None, f"the run ended before {delay:.1f} s, four times: nothing was killed"
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL
        check_torn(work, scenario)
        again = subprocess.run(command, env=env_for(work), capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-2000:]
        assert table_bytes(work) == expected
        assert released_data(work)[1] == released_data(scenario["after"])[1]


def test_a_run_finds_the_data_directory_busy_and_changes_nothing(scenario, tmp_path):
    work = tmp_path / "busy"
    shutil.copytree(scenario["before"], work)
    before = table_bytes(work)
    with store.exclusive(DataDir.resolve(work), "an operator's manual fix"):
        env = {**os.environ, "PAPERS_DATA_DIR": str(work), "DAGSTER_HOME": str(work / "dagster")}
        loser = subprocess.run([sys.executable, "-m", "assets.cli", "run", "--captures", str(scenario["captures"])],
                               env=env, capture_output=True, text=True, timeout=300)
    assert loser.returncode == 1
    assert "is being written by an operator's manual fix" in loser.stderr and "changed nothing" in loser.stderr
    assert table_bytes(work) == before


@pytest.mark.slow
def test_two_runs_at_once_end_with_one_result_and_a_clear_error_for_the_loser(scenario, tmp_path):
    work = tmp_path / "race"
    shutil.copytree(scenario["before"], work)
    env = {**os.environ, "PAPERS_DATA_DIR": str(work), "DAGSTER_HOME": str(work / "dagster")}
    command = [sys.executable, "-m", "assets.cli", "run", "--captures", str(scenario["captures"])]
    both = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outcomes = [(p.wait(300), p.stderr.read()) for p in both]
    for code, err in outcomes:
        assert code == 0 or "did not start and changed nothing" in err, err[-2000:]
    assert table_bytes(work) == table_bytes(scenario["after"])
    assert released_data(work) == released_data(scenario["after"])


def test_the_same_partition_twice_gives_identical_tables_and_no_new_release(tmp_path):
    from assets.sources import HubResource, daily_papers
    from bench.hub_server import HubServer, HubState

    day = [api_item({"title": f"Repeatable paper {i}", "abstract": f"Always the same, part {i}.",
                     "arxiv_id": f"2604.{i:05d}", "published_on": dt.date(2026, 4, 2), "upvotes": i})
           for i in range(5)]
    data, empty = tmp_path / "data", tmp_path / "nothing"
    empty.mkdir()
    resources = {"datadir": DataDirResource(data_dir=str(data)), "release_target": ReleaseTargetResource()}
    snapshots = []
    with HubServer(HubState({"2026-04-02": day})) as server:
        for _ in range(2):
            assert dg.materialize([daily_papers], partition_key="2026-04-02",
                                  resources={**resources, "hub": HubResource(base_url=server.url)}).success
            assert run(data, empty).success
            snapshots.append((table_bytes(data), {p.name: p.read_bytes() for p in (data / "fetched").rglob("*.parquet")},
                              LocalGitTarget(data / "releases").tags()))
    assert snapshots[0] == snapshots[1]
    assert len(snapshots[0][2]) == 1


def test_hostile_captures_are_rejected_or_stored_safely(tmp_path):
    folder, data = tmp_path / "hostile", tmp_path / "data"
    folder.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not for the pipeline")
    with open(folder / "huge.txt", "wb") as fh:  # over the 50 MiB cap (sparse: no disk used)
        fh.truncate(60 * 1024 * 1024)
    (folder / "binary.bin").write_bytes(random.Random(1).randbytes(4096))
    (folder / "latin1.txt").write_bytes("Résumé of a paper\n\nPublished on Jan 3\n".encode("latin-1"))
    (folder / "utf16.txt").write_bytes("Daily Papers\n".encode("utf-16-le"))  # no BOM
    (folder / "nested.html").write_text("<div>" * 200_000 + "<script data-props='{\"x\": [" + "]" * 50)
    (folder / "malformed.html").write_text("<html><body><div class=papers><a href=x>unclosed <b><i></body>")
    (folder / "wrong_types.json").write_text(json.dumps([
        {"paper": {"id": 123, "title": ["not", "a", "string"], "upvotes": "many", "authors": "nobody"}},
        {"paper": {}}, {"no_paper": True}, "a string", None, 42]))
    evil = api_item({"title": "Evil\x00 title\x1b[31m with\x07 controls\u202e", "abstract": "Control\x0b chars.",
                     "arxiv_id": "2605.00001", "published_on": dt.date(2026, 5, 1), "upvotes": 1})
    evil["paper"]["organization"] = {"name": "../../etc/passwd", "fullname": "../../../../tmp/owned"}
    traversal = api_item({"title": "../../etc/passwd", "abstract": "A title that looks like a path.",
                          "arxiv_id": "2605.00002", "published_on": dt.date(2026, 5, 1), "upvotes": 2})
    (folder / "2026-05-01.json").write_text(json.dumps([evil, traversal]))
    (folder / "link.txt").symlink_to(outside / "secret.txt")
    untouched = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if data not in (p, *p.parents)}

    result = run(data, folder)
    assert result.success
    captures = pl.read_parquet(data / "tables" / "captures.parquet")
    listings = pl.read_parquet(data / "tables" / "listings" / "*.parquet")
    rejects = pl.read_parquet(data / "tables" / "rejects" / "*.parquet")
    assert "link.txt" not in captures["origin"].to_list()  # the symbolic link was not followed
    accounted = set(listings["capture_id"]) | set(rejects["capture_id"])
    assert set(captures["capture_id"]) <= accounted  # every file gave listings or rejects
    huge = captures.filter(pl.col("origin") == "huge.txt").row(0, named=True)
    assert huge["raw_path"] is None and huge["n_bytes"] == 60 * 1024 * 1024
    assert rejects.filter(pl.col("capture_id") == huge["capture_id"])["rule"].to_list() == ["too_large"]
    assert sum(p.stat().st_size for p in (data / "raw").rglob("*") if p.is_file()) < 1024 * 1024
    titles = listings["title"].to_list()
    assert "../../etc/passwd" in titles
    assert not any(ord(c) < 32 or c in "\x7f\u202e" for t in titles for c in t)
    org = listings.filter(pl.col("arxiv_id") == "2605.00001")["organization"].to_list()
    assert org in ([], ["../../etc/passwd"])  # kept as a string, or the row rejected
    # nothing was written outside the data directory
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if data not in (p, *p.parents)} == untouched


def test_the_query_command_cannot_write_anything(scenario, tmp_path, capsys, monkeypatch):
    from assets import cli

    work = tmp_path / "sql"
    shutil.copytree(scenario["before"], work)
    store.write_catalog(DataDir.resolve(work))  # the catalog of this copy
    monkeypatch.setenv("PAPERS_DATA_DIR", str(work))
    before = {p: p.read_bytes() for p in work.rglob("*") if p.is_file() and "dagster" not in p.parts}
    assert cli.main(["query", "SELECT count(*) AS n FROM papers"]) == 0
    assert "n" in capsys.readouterr().out
    for sql in ("DROP VIEW papers", "CREATE TABLE t AS SELECT 1", "INSERT INTO papers SELECT * FROM papers",
                f"COPY (SELECT * FROM papers) TO '{tmp_path}/dump.csv'", f"ATTACH '{tmp_path}/other.db' AS o",
                "SET enable_external_access = true", "SELECT * FROM read_csv('/etc/passwd')",
                f"COPY (SELECT 1) TO '{work}/tables/papers.parquet'"):
        assert cli.main(["query", sql]) == 1, sql
    assert not (tmp_path / "dump.csv").exists() and not (tmp_path / "other.db").exists()
    assert {p: p.read_bytes() for p in work.rglob("*") if p.is_file() and "dagster" not in p.parts} == before


@pytest.mark.slow
def test_a_backfill_against_a_flaky_server_captures_every_page_exactly_once(tmp_path):
    from assets.sources import HubResource, daily_papers
    from bench.hub_server import HubServer, HubState
    from pipeline.sources.hub import PAGE_SIZE

    days = [(dt.date(2026, 2, 1) + dt.timedelta(days=i)).isoformat() for i in range(12)]
    pages = {day: [api_item({"title": f"Paper {j} of {day}", "abstract": f"Number {j} of {day}.",
                             "arxiv_id": f"2602.{i * 1000 + j:05d}", "published_on": dt.date.fromisoformat(day),
                             "upvotes": j}) for j in range(PAGE_SIZE + 20)] for i, day in enumerate(days)}
    r = random.Random(11)
    faults = [r.choice([500, 502, 503, 429, "drop", "truncate"]) if r.random() < 0.35 else None for _ in range(400)]
    state = HubState(pages, faults=faults)
    data = tmp_path / "data"
    with HubServer(state) as server:
        resources = {"datadir": DataDirResource(data_dir=str(data)),
                     "hub": HubResource(base_url=server.url, requests_per_second=100, attempts=2, timeout_seconds=2)}
        todo = days
        for _ in range(8):  # the backfill, then reruns of the days that failed, as an operator would
            todo = [day for day in todo
                    if not dg.materialize([daily_papers], partition_key=day, resources=resources,
                                          raise_on_error=False).success
                    or len(pl.read_parquet(data / "fetched" / "daily" / f"{day}.captures.parquet")) < 2]
            if not todo:
                break
    assert todo == []
    log = pl.concat([pl.read_parquet(p) for p in (data / "fetched" / "daily").glob("*.log.parquet")])
    assert log.filter(pl.col("outcome") == "failed").height > 0  # the faults did bite
    captures = pl.concat([pl.read_parquet(p) for p in (data / "fetched" / "daily").glob("*.captures.parquet")])
    assert captures.height == 2 * len(days)  # two pages a day, each captured once
    assert captures["capture_id"].n_unique() == captures.height
    stored = sorted(p.name for p in (data / "raw").rglob("*") if p.is_file())
    assert stored == sorted(captures["capture_id"].to_list())
    entries = []
    for row in captures.iter_rows(named=True):
        entries += [item["paper"]["title"] for item in json.loads((data / row["raw_path"]).read_bytes())]
    assert sorted(entries) == sorted(i["paper"]["title"] for day in days for i in pages[day])
