"""Eight weeks of unattended operation, simulated day by day (`bench.year`): the real schedule and
automation conditions, a Hub-like server with faults, releases to a Hub-like repository server,
runs killed at named fault points. `bench.year` checks the pipeline against what its server served;
this test also checks the result against the generated weeks themselves. (Eight weeks hold every
event of a simulated quarter: the year-end break, the API's new fields, the failing second page, the
four kills; `python -m bench.year --days 91 --years 1` runs the quarter.)"""

import datetime as dt
import json
import os
import subprocess
import sys

import duckdb
import pytest

from bench.year import KILLS, Model
from conftest import ROOT

START, DAYS = dt.date(2024, 12, 2), 56  # the year-end break and the API's new fields fall inside


@pytest.mark.slow(minutes=6)
def test_eight_weeks_of_unattended_operation(tmp_path, monkeypatch):
    work = tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    run = subprocess.run([sys.executable, "-m", "bench.year", "--start", START.isoformat(), "--days", str(DAYS),
                          "--years", "1", "--work", str(work), "--json", str(tmp_path / "quarter.json")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    (quarter,) = json.loads((tmp_path / "quarter.json").read_text())["years"]
    assert quarter["problems"] == [], quarter["problems"]
    assert run.returncode == 0, run.stderr[-2000:]

    # every planned kill happened where it was meant to, and the days after went on
    assert [(k["day"], k["point"], k["killed"]) for k in quarter["kills"]] == [
        ((START + dt.timedelta(days=n)).isoformat(), point, True) for n, (_, point) in sorted(KILLS.items())]
    assert quarter["runs"]["daily_scrape_job"] == DAYS  # one run a morning, killed or not
    assert sum(quarter["faults"].values()) > 0 and quarter["faults"]["second page down"] >= 1

    # the store holds each paper of the weeks once, with the upvotes it settled at
    model = Model(START, DAYS)
    end = START + dt.timedelta(days=DAYS - 1)
    listed = {p.arxiv_id: p for day, papers in model.lists.items() for p in papers}
    monkeypatch.chdir(work / "data")  # the catalog's views name the tables relative to it
    with duckdb.connect("catalog.duckdb", read_only=True) as db:
        rows = db.sql("SELECT arxiv_id, upvotes FROM papers").fetchall()
        history = db.sql("""SELECT p.arxiv_id, list(DISTINCT s.upvotes) FROM sightings s
                                JOIN papers p USING (paper_id) GROUP BY p.arxiv_id""").fetchall()
    assert len(rows) == len(listed) and {a for a, _ in rows} == set(listed)
    settled = {a: up for a, up in rows if (end - listed[a].listed).days >= 14}
    assert settled and settled == {a: listed[a].upvotes for a in settled}
    # each paper's history holds only values it had, day by day, and ends at the settled one
    for arxiv_id, values in history:
        paper = listed[arxiv_id]
        had = {paper.upvotes_on(paper.listed + dt.timedelta(days=d)) for d in range((end - paper.listed).days + 1)}
        assert set(values) <= had, arxiv_id
        assert arxiv_id not in settled or paper.upvotes in values
    # and papers whose upvotes grew have a history, not a single value (a page lost to the day's
    # kill or to the failing second page can hide the first value of a few)
    grew = [a for a in settled if len({listed[a].upvotes_on(listed[a].listed + dt.timedelta(days=d))
                                       for d in range(14)}) > 1]
    with_history = [a for a in grew if len(dict(history)[a]) > 1]
    assert len(with_history) >= 0.95 * len(grew) > 0
