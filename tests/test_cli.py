"""The `papers` console script, run as a user runs it."""

import gc
import json
import os
import subprocess
import sys

from conftest import SAMPLE_FILES

PAPERS = [sys.executable, "-m", "assets.cli"]


def run(args, data_dir, **kw):
    env = {**os.environ, "PAPERS_DATA_DIR": str(data_dir)}
    return subprocess.run(PAPERS + args, capture_output=True, text=True, env=env, timeout=300, **kw)


def test_run_then_query(data_dir):
    done = run(["run"], data_dir)
    assert done.returncode == 0, done.stderr
    assert "165 rows" in done.stdout and "version v" in done.stdout
    assert "parsed 3 new captures (3 in all): 178 new listings, 0 new rejects" in done.stderr  # progress
    assert (data_dir / "dagster" / "dagster.yaml").exists()  # the instance the UI opens
    assert list((data_dir / "dagster" / "storage").iterdir())  # the run is recorded there
    query = run(["query", "SELECT count(*) AS n FROM papers"], data_dir)
    assert query.returncode == 0 and "165" in query.stdout
    refused = run(["query", "CREATE TABLE t AS SELECT 1"], data_dir)
    assert refused.returncode == 1 and "only queries run here" in refused.stderr
    again = run(["run"], data_dir)
    assert again.returncode == 0 and "(unchanged)" in again.stdout

    # an operator edits a table by hand: no entry point publishes it or builds on it
    import polars as pl

    from pipeline.publish import LocalGitTarget

    table = sorted((data_dir / "tables" / "papers").glob("*.parquet"))[0]
    original = table.read_bytes()
    papers = pl.read_parquet(table)
    papers.with_columns(upvotes=pl.when(pl.col("paper_id") == papers["paper_id"][0]).then(999)
                        .otherwise(pl.col("upvotes"))).write_parquet(table)
    head = LocalGitTarget(data_dir / "releases").head()
    for command in (["publish", "--dry-run"], ["publish"], ["run"]):
        refused = run(command, data_dir)
        assert refused.returncode == 1, command
        assert f"{table} is not the file its commit wrote" in refused.stderr, command
        assert "Traceback" not in refused.stderr
    assert LocalGitTarget(data_dir / "releases").head() == head
    table.write_bytes(original)  # restored: the same data as the latest version
    dry = run(["publish", "--dry-run"], data_dir)
    assert dry.returncode == 0 and "nothing to publish" in dry.stdout


def test_run_with_missing_captures_folder_fails_clearly(data_dir, tmp_path):
    done = run(["run", "--captures", str(tmp_path / "nope")], data_dir)
    assert done.returncode == 2  # refused before anything starts
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_parse_prints_listings_as_json_lines(tmp_path):
    done = run(["parse", str(SAMPLE_FILES[0]), str(tmp_path / "missing.txt")], tmp_path / "unused")
    assert done.returncode == 2 and "no such file" in done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 43 and {r["kind"] for r in rows} == {"listing"}
    assert rows[0]["title"] == "CoLiDE: Concomitant Linear DAG Estimation"
    assert rows[0]["published_on"] == "2023-10-04" and rows[0]["author_count"] == 3
    assert not (tmp_path / "unused").exists()  # parse writes nothing


def test_a_command_spares_the_collector_full_passes_and_the_teardown(tmp_path):
    """A command ends as Python ends a program, short of the interpreter's teardown (its
    collections went through every object the command had made, about 1 s of every command): the
    exit handlers run and the output is whole, the status is the command's, and what only the
    teardown would do (an object of the main module finalized) is not done. While it runs, the
    collector goes through every object ten times more rarely than by default."""
    handled, torn_down = tmp_path / "exit handlers ran", tmp_path / "torn down"
    # (an exit handler registered as the modules the command imports register theirs: after the
    # console script's own; it notes the collector's thresholds the command ran with)
    probe = ("import atexit, gc, json, pathlib\n"
             "from assets.cli import entry\n"
             "class Marker:\n"
             f"    def __del__(self, touch=pathlib.Path({str(torn_down)!r}).touch): touch()\n"
             "marker = Marker()\n"
             f"atexit.register(lambda: pathlib.Path({str(handled)!r}).write_text(json.dumps(gc.get_threshold())))\n"
             "entry()\n")
    command = [sys.executable, "-c", probe, "parse", str(SAMPLE_FILES[0]), str(tmp_path / "missing.txt")]
    env = {**os.environ, "PAPERS_DATA_DIR": str(tmp_path / "unused")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 2 and "no such file" in done.stderr  # the command's status
    usual = subprocess.run([sys.executable, "-c", "import sys; from assets.cli import main; sys.exit(main())",
                            *command[3:]], capture_output=True, text=True, timeout=300, env=env)
    assert done.stdout == usual.stdout and usual.stdout.count("\n") > 10  # the output whole
    assert handled.exists() and not torn_down.exists()
    # full collections (through every object) ten times rarer than Python's default
    young, middle, full = json.loads(handled.read_text())
    assert (young, middle) == gc.get_threshold()[:2] and full == 10 * gc.get_threshold()[2]


def test_scrape_then_run_against_a_local_hub(data_dir, tmp_path):
    import datetime as dt

    from bench.render import api_item
    from bench.hub_server import HubServer, HubState

    day = [api_item({"title": f"Scraped paper {i}", "abstract": f"About scraped thing number {i}.",
                     "arxiv_id": f"2603.{i:05d}", "published_on": dt.date(2026, 3, 9), "upvotes": i})
           for i in range(3)]
    empty = tmp_path / "no_files"
    empty.mkdir()
    with HubServer(HubState({"2026-03-09": day})) as server:
        env = {**os.environ, "PAPERS_DATA_DIR": str(data_dir), "PAPERS_HUB_URL": server.url}
        scraped = subprocess.run(PAPERS + ["scrape", "--from", "2026-03-08", "--to", "2026-03-09"],
                                 capture_output=True, text=True, env=env, timeout=300)
    assert scraped.returncode == 0, scraped.stderr
    assert "[1/1] daily papers of 2026-03-08..2026-03-09" in scraped.stderr and "1 pages done" in scraped.stderr
    done = run(["run", "--captures", str(empty)], data_dir)  # the server is gone: replay only
    assert done.returncode == 0, done.stderr
    query = run(["query", "SELECT count(*) FROM papers WHERE arxiv_id LIKE '2603.%'"], data_dir)
    assert "3" in query.stdout
