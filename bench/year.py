"""A year of unattended operation, simulated day by day: `python -m bench.year`.

A generated year of the Hub's Daily Papers (`Model`) is served by a local server that answers like
the Hub's `/api/daily_papers` (`YearServer`), with the faults of a real year: 429 with Retry-After,
5xx, dropped connections, timeouts, truncated bodies, and one day whose second page fails all day.
Releases go to a local server that speaks the Hub's repository API (`bench.hub_repo_server`),
through the real `huggingface_hub` client.

The driver (`Simulation`) does what the Dagster daemon would, on a simulated clock (time-machine):
each morning it evaluates the real `daily_papers_schedule` at its scheduled time and runs what it
asks for, then evaluates the real automation conditions and runs what they request, until they
request nothing. On a few days it runs one of those runs in a child process that kills itself at a
named fault point (`PAPERS_FAULT`), and then marks the dead run failed as `papers` does; the next
day goes on by itself.

At the end of each year, `check` compares what the pipeline holds with what the server served
(recorded by the server, response by response) and with the model, and lists every difference.

    python -m bench.year                      # two years, the second on top of the first
    python -m bench.year --days 91 --years 1  # a quarter
    python -m bench.year --days 56 --years 1  # eight weeks (what the test suite runs)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import polars as pl

from bench.hub_server import LocalServer, QuietHandler
from bench.render import api_item

UTC = dt.timezone.utc
REPO = "sim/hf-papers"
TOKEN = "hf_simulated_year_token"
SCHEDULED_AT = dt.time(6, 30)  # the schedule's cron time, UTC
# The deployment's settings for the local server: a timeout costs 2 s, and no need to be polite.
HUB_CONFIG = {"timeout_seconds": 2.0, "requests_per_second": 200.0}
SLOW_SECONDS = 3.0  # a "slow" answer comes after the client has given up
FAULT_RATE = 0.02  # of requests, besides the day whose second page fails
FAULTS = [(429, 3), (500, 1), (502, 1), (503, 1), ("drop", 2), ("truncate", 2), ("slow", 0.5)]
# Kills, by day of each 91-day quarter: (the run killed, the fault point it is killed at).
# (all in its first eight weeks, which the test suite simulates)
KILLS = {9: ("scrape", "commit:fetch:staged"), 23: ("automation", "commit:resolve:journaled"),
         37: ("automation", "release:committed"), 51: ("automation", "commit:parse:staged")}


# ---------------------------------------------------------------------------------------------- the model

@dataclasses.dataclass
class Paper:
    arxiv_id: str
    listed: dt.date  # first listed
    title: str
    abstract: str
    authors: list[str]
    organization: str | None
    published_on: dt.date
    upvotes: int  # where upvotes settle,
    comments: int
    grow_days: int  # after this many days of growing (at most 12, inside the 14-day refetch window)
    revised: tuple[int, str, str] | None  # an arXiv revision: (days after listing, title, abstract)
    keywords: list[str]
    summary: str

    def age(self, day: dt.date) -> int:
        return (day - self.listed).days

    def _grown(self, settled: int, day: dt.date) -> int:
        return round(settled * min(1.0, (self.age(day) + 1) / self.grow_days))

    def upvotes_on(self, day: dt.date) -> int:
        return self._grown(self.upvotes, day)

    def comments_on(self, day: dt.date) -> int:
        return self._grown(self.comments, day)

    def text_on(self, day: dt.date) -> tuple[str, str]:
        if self.revised and self.age(day) >= self.revised[0]:
            return self.revised[1], self.revised[2]
        return self.title, self.abstract


def _holiday(day: dt.date) -> bool:
    """The year-end break (23 December to 1 January) and the first of May: no Daily Papers."""
    return (day.month == 12 and day.day >= 23) or (day.month == 1 and day.day == 1) or (day.month, day.day) == (5, 1)


class Model:
    """`days` days of Daily Papers from `start`, drawn from `seed`. From `field_day` on, the API's
    items carry two new fields (`ai_summary`, `ai_keywords`), as the real API's did."""

    def __init__(self, start: dt.date, days: int, seed: int = 2024, field_day: dt.date | None = None):
        rng = random.Random(seed)
        self.start = start
        self.field_day = field_day or start + dt.timedelta(days=min(days, 365) // 2)  # mid-(first) year
        syllables = [a + b for a in "bcdfghklmnprstvz" for b in ("a", "e", "i", "o", "u", "ai", "ou")]
        words = sorted({"".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(6000)})
        names = [f"{rng.choice(words).title()} {rng.choice(words).title()}" for _ in range(3000)]
        orgs = [(w, w.title() + " Lab") for w in rng.sample(words, 40)]
        self.lists: dict[dt.date, list[Paper]] = {}
        self.papers: dict[str, Paper] = {}
        serial: Counter = Counter()
        recent: list[Paper] = []
        for n in range(days):
            day = start + dt.timedelta(days=n)
            if day.weekday() >= 5 or _holiday(day):
                self.lists[day] = []
                continue
            listed = []
            for _ in range(rng.randint(30, 150)):
                serial[(day.year, day.month)] += 1
                arxiv_id = f"{day:%y%m}.{serial[(day.year, day.month)]:05d}"
                title = " ".join(rng.choices(words, k=rng.randint(5, 11))).capitalize()
                abstract = " ".join(rng.choices(words, k=rng.randint(40, 90))).capitalize() + "."
                revised = None
                if rng.random() < 0.004:
                    revised = (rng.randint(2, 8), title + " " + rng.choice(words),
                               abstract[:-1] + " " + " ".join(rng.choices(words, k=12)) + ".")
                org = rng.choice(orgs) if rng.random() < 0.3 else None
                paper = Paper(arxiv_id, day, title, abstract, rng.sample(names, rng.randint(1, 9)), org and org[0],
                              day - dt.timedelta(days=rng.randint(0, 4)), min(900, int(rng.paretovariate(1.1)) - 1),
                              int(rng.paretovariate(1.5)) - 1, rng.randint(3, 12), revised,
                              rng.sample(words, 4), " ".join(rng.choices(words, k=25)).capitalize() + ".")
                self.papers[arxiv_id] = paper
                listed.append(paper)
            # papers listed again, a few days after they first were
            again = [p for p in recent if 0 < (day - p.listed).days <= 7]
            listed += rng.sample(again, min(len(again), rng.randint(0, 3)))
            recent = [p for p in recent if (day - p.listed).days < 7] + listed
            self.lists[day] = listed
        self.orgs = dict(orgs)

    def item(self, paper: Paper, today: dt.date) -> dict:
        title, abstract = paper.text_on(today)
        new_fields = today >= self.field_day
        item = api_item({"arxiv_id": paper.arxiv_id, "title": title, "abstract": abstract, "authors": paper.authors,
                         "published_on": paper.published_on, "upvotes": paper.upvotes_on(today),
                         "comments": paper.comments_on(today), "organization": paper.organization,
                         "organization_name": self.orgs.get(paper.organization),
                         "ai_keywords": paper.keywords if new_fields else None})
        if new_fields:
            item["paper"]["ai_summary"] = paper.summary
        return item

    def page(self, date: dt.date, today: dt.date, limit: int, page: int) -> list[dict]:
        return [self.item(p, today) for p in self.lists.get(date, [])[page * limit:(page + 1) * limit]]

    def broken_day(self) -> dt.date | None:
        """The first day of over 100 papers (two pages) after the first fortnight: its second page
        fails all that day."""
        return next((d for d, ps in self.lists.items() if len(ps) > 100 and (d - self.start).days >= 14), None)


# ---------------------------------------------------------------------------------------------- the server

@dataclasses.dataclass
class Served:
    day: dt.date  # the simulated day it was served on
    date: str
    page: int
    digest: str
    papers: list[tuple[str, int, str, str | None]]  # arxiv id, upvotes, title, ai_summary
    lost: bool  # served to a run that was then killed, before it could keep it


class YearServer(LocalServer):
    """`/api/daily_papers` as the Hub answers it on the simulated day `today`, with faults."""

    def __init__(self, model: Model, seed: int = 7):
        self.model = model
        self.today: dt.date = model.start
        self.rng = random.Random(seed)
        self.broken = model.broken_day()
        self.lost = False
        self.served: list[Served] = []
        self.faults: Counter = Counter()
        self.requests = 0
        self.lock = threading.Lock()
        super().__init__(_year_handler(self))

    def fault(self, date: str, page: int):
        with self.lock:
            self.requests += 1
            if self.broken and date == self.broken.isoformat() and page == 1 and self.today == self.broken:
                self.faults["second page down"] += 1
                return 503
            if self.rng.random() >= FAULT_RATE:
                return None
            kinds, weights = zip(*FAULTS)
            kind = self.rng.choices(kinds, weights)[0]
            self.faults[str(kind)] += 1
            return kind


def _year_handler(server: YearServer):
    class Handler(QuietHandler):
        def do_GET(self):
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path != "/api/daily_papers":
                return self._send(404, {"error": "not found"})
            date, limit, page = query.get("date", ""), int(query.get("limit", 50)), int(query.get("p", 0))
            try:
                day = dt.date.fromisoformat(date)
            except ValueError:
                return self._send(400, {"error": "Invalid date"})
            if day > server.today:
                return self._send(400, {"error": "Date cannot be in the future"})
            fault = server.fault(date, page)
            if fault == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault == "slow":
                time.sleep(SLOW_SECONDS)
                self.close_connection = True
                return
            if isinstance(fault, int):
                return self._send(fault, {"error": "injected"}, headers={"Retry-After": "1"} if fault == 429 else None)
            items = server.model.page(day, server.today, limit, page)
            body = json.dumps(items).encode()
            digest = hashlib.sha256(body).hexdigest()
            etag = f'"{digest[:20]}"'
            if fault == "truncate":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body) + 100))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return
            if self.headers.get("If-None-Match") == etag:
                return self._send(304, b"", headers={"ETag": etag})
            self._send(200, body, headers={"ETag": etag})
            papers = [(i["paper"]["id"], i["paper"]["upvotes"], i["paper"]["title"], i["paper"].get("ai_summary"))
                      for i in items]
            with server.lock:
                server.served.append(Served(server.today, date, page, digest, papers, server.lost))

    return Handler


# ---------------------------------------------------------------------------------------------- the driver

def _set_environment(work: Path, hub_url: str, repo_url: str) -> None:
    os.environ.update(PAPERS_DATA_DIR=str(work / "data"), DAGSTER_HOME=str(work / "dagster"),
                      PAPERS_HUB_URL=hub_url, PAPERS_HUB_REPO=REPO, HF_ENDPOINT=repo_url, HF_TOKEN=TOKEN,
                      HF_HUB_DISABLE_XET="1", HF_HUB_OFFLINE="0", HF_HUB_DISABLE_TELEMETRY="1")


@dataclasses.dataclass
class Kill:
    day: dt.date
    run: str  # scrape | automation
    point: str
    killed: bool = False  # the child died of SIGKILL at that point, as planned


class Simulation:
    """The daemon's work on a simulated clock, with the real definitions, over one work directory."""

    def __init__(self, work: Path, model: Model, server: YearServer, repo_server, progress=print):
        import dagster as dg

        from assets.cli import _dagster_home
        from pipeline.paths import DataDir

        self.work, self.model, self.server, self.repo_server = work, model, server, repo_server
        self.progress = progress
        _dagster_home(DataDir.resolve())
        self.instance = dg.DagsterInstance.get()
        self.cursor = None
        self.kills: list[Kill] = []
        self.check_results: list[tuple[dt.date, str, bool]] = []
        self.runs: Counter = Counter()
        self.day_seconds: list[float] = []

    def run_days(self, first: dt.date, last: dt.date) -> None:
        day = first
        while day <= last:
            started = time.monotonic()
            self.day(day)
            self.day_seconds.append(time.monotonic() - started)
            n = (day - first).days + 1
            if n % 7 == 0 or day == last:
                self.progress(f"{day}: {n} days, {sum(self.runs.values())} runs, "
                              f"{len(self.repo_tags())} releases, {time.monotonic() - started:.1f} s that day")
            day += dt.timedelta(days=1)

    def day(self, day: dt.date) -> None:
        import dagster as dg
        import time_machine

        from assets.definitions import daily_papers_schedule

        quarter_day = (day - self.model.start).days % 91
        kill = KILLS.get(quarter_day)
        kill = Kill(day, *kill) if kill else None
        morning = dt.datetime.combine(day, SCHEDULED_AT, tzinfo=UTC)
        with time_machine.travel(morning, tick=True):
            self.server.today = day
            if self.cursor is None:  # the automation sensor's first tick, as the daemon starts
                self.cursor = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance).cursor
            context = dg.build_schedule_context(instance=self.instance, scheduled_execution_time=morning,
                                                repository_def=self.defs.get_repository_def())
            requests = daily_papers_schedule.evaluate_tick(context).run_requests or []
            for request in requests:
                config = {**request.run_config, "resources": {"hub": {"config": HUB_CONFIG}}}
                tags = {**request.tags, "dagster/run_key": request.run_key,
                        "dagster/schedule_name": daily_papers_schedule.name}
                killing = kill if kill and kill.run == "scrape" and not kill.killed else None
                self.launch("daily_scrape_job", killing, run_config=config, partition_key=request.partition_key,
                            tags=tags)
            for _ in range(5):  # the automation sensor's ticks, until it asks for nothing
                result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
                self.cursor = result.cursor
                keys = [k for k in self.asset_keys if result.get_num_requested(k)]
                if not keys:
                    break
                killing = kill if kill and kill.run == "automation" and not kill.killed else None
                self.launch(None, killing, asset_selection=keys, tags={"dagster/from_automation_condition": "true"})
        if kill:
            self.kills.append(kill)

    @property
    def defs(self):
        from assets.definitions import defs

        return defs

    @property
    def asset_keys(self):
        return [node.key for node in self.defs.get_repository_def().asset_graph.asset_nodes]

    def launch(self, job_name: str | None, kill: Kill | None, tags: dict, **kwargs) -> None:
        """Run a job in this process (or, to kill it, in a child) as the daemon would launch it."""
        from assets.cli import _fail_dead_runs, _run_tags

        job = self.defs.resolve_job_def(job_name) if job_name else self.defs.resolve_implicit_global_asset_job_def()
        self.runs[job_name or "automation"] += 1
        if kill is None:
            result = job.execute_in_process(instance=self.instance, raise_on_error=False,
                                            tags={**tags, **_run_tags()}, **kwargs)
            for check in result.get_asset_check_evaluations():
                self.check_results.append((self.server.today, check.check_name, check.passed))
            if not result.success:
                self.progress(f"{self.server.today}: run {result.run_id} of {job.name} failed")
            return
        # A child of its own (spawned: Polars' threads do not survive a fork), on the same clock.
        self.server.lost = kill.run == "scrape"
        said = self.work / "killed.stderr"
        child = multiprocessing.get_context("spawn").Process(
            target=_killed_run, args=(job_name, kill.point, dt.datetime.now(UTC), str(said), tags, kwargs))
        child.start()
        child.join()
        self.server.lost = False
        kill.killed = (child.exitcode == -signal.SIGKILL
                       and f"fault point {kill.point}: killing process {child.pid}" in said.read_text())
        self.progress(f"{self.server.today}: {job.name} run killed at {kill.point}: "
                      f"{'as planned' if kill.killed else 'NOT as planned'}")
        _fail_dead_runs(self.instance)  # as `papers` does for runs whose process died

    def repo_tags(self) -> dict[str, str]:
        repo = self.repo_server.repos.get(REPO)
        return dict(repo.tags) if repo else {}


def _killed_run(job_name: str | None, point: str, now: dt.datetime, stderr: str, tags: dict, kwargs: dict) -> None:
    """A run in a process that kills itself at `point` (`PAPERS_FAULT`)."""
    import dagster as dg
    import time_machine

    from assets.cli import _run_tags
    from assets.definitions import defs

    with open(stderr, "wb") as out:
        os.dup2(out.fileno(), 2)
    os.environ["PAPERS_FAULT"] = point
    with time_machine.travel(now, tick=True):
        job = defs.resolve_job_def(job_name) if job_name else defs.resolve_implicit_global_asset_job_def()
        job.execute_in_process(instance=dg.DagsterInstance.get(), raise_on_error=False, tags={**tags, **_run_tags()},
                               **kwargs)


# ---------------------------------------------------------------------------------------------- the checks

def expected_state(served: list[Served], until: dt.date) -> dict[str, tuple[int, str, str | None]]:
    """Each paper's upvotes, title and summary as last served (and kept) up to the end of `until`."""
    state = {}
    for s in served:
        if not s.lost and s.day <= until:
            for arxiv_id, upvotes, title, summary in s.papers:
                state[arxiv_id] = (upvotes, title, summary)
    return state


def news_days(served: list[Served]) -> set[dt.date]:
    """The days the pipeline kept a page it had not seen before."""
    seen, days = set(), set()
    for s in served:
        if not s.lost and s.digest not in seen:
            seen.add(s.digest)
            days.add(s.day)
    return days


def release_papers(repo, tag: str) -> pl.DataFrame:
    """A tag's `papers` (the three columns the checks read), from the repository server's storage."""
    import io

    tree = repo.commits[repo.tags[tag]]
    return pl.concat([pl.read_parquet(io.BytesIO(tree[p]), columns=["arxiv_id", "paper_id", "upvotes"])
                      for p in sorted(tree) if p.startswith("data/papers/")])


def load_with_datasets(repo_url: str, tags: list[str]) -> dict[str, dict[str, int]]:
    """`load_dataset(repo, revision=tag)` for each tag, in a process of its own (as a researcher
    would): arXiv id -> upvotes."""
    script = ("import json, sys, datasets\n"
              "out = {}\n"
              "for tag in sys.argv[2:]:\n"
              "    rows = datasets.load_dataset(sys.argv[1], 'papers', revision=tag, split='train')\n"
              "    out[tag] = dict(zip(rows['arxiv_id'], rows['upvotes']))\n"
              "print(json.dumps(out))\n")
    cache = tempfile.mkdtemp(prefix="year-hf-cache-")
    try:
        env = {**os.environ, "HF_ENDPOINT": repo_url, "HF_HOME": cache, "HF_HUB_OFFLINE": "0",
               "HF_DATASETS_OFFLINE": "0"}
        out = subprocess.run([sys.executable, "-c", script, REPO, *tags], env=env, capture_output=True, text=True,
                             timeout=900)
        if out.returncode:
            raise RuntimeError(f"load_dataset failed: {out.stderr.strip().splitlines()[-1:]}")
        return json.loads(out.stdout)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def check(sim: Simulation, first: dt.date, last: dt.date, sample: int = 4) -> list[str]:
    """Every way the pipeline's year differs from what the server served; [] when it held."""
    import dagster as dg

    from pipeline import store
    from pipeline.paths import DataDir

    problems: list[str] = []
    served = sim.server.served
    model = sim.model
    final = expected_state(served, last)

    # every paper the server listed is in `papers` once, with what was last served of it
    data_dir = DataDir.resolve()
    papers = store.read_table(data_dir, "papers")
    sightings = store.read_table(data_dir, "sightings")
    listed = set(final)  # what the server served and the pipeline kept
    unserved = {p.arxiv_id for d, ps in model.lists.items() if d < last - dt.timedelta(days=1) for p in ps} - listed
    if unserved:  # a day's papers stay unserved only while that day's fetch is being retried
        problems.append(f"{len(unserved)} papers listed before {last} were never served: {sorted(unserved)[:5]}")
    counts = papers.group_by("arxiv_id").len().filter(pl.col("len") > 1)
    if counts.height:
        problems.append(f"{counts.height} papers appear more than once in `papers`: {counts['arxiv_id'][:5].to_list()}")
    held = {r["arxiv_id"]: r for r in papers.iter_rows(named=True)}
    if set(held) != listed:
        problems.append(f"`papers` lacks {len(listed - set(held))} listed papers {sorted(listed - set(held))[:5]} "
                        f"and has {len(set(held) - listed)} never listed {sorted(set(held) - listed)[:5]}")
    wrong = [a for a, (up, title, summary) in final.items()
             if a in held and (held[a]["upvotes"], held[a]["title"], held[a]["ai_summary"]) != (up, title, summary)]
    if wrong:
        problems.append(f"{len(wrong)} papers differ from what was last served, e.g. {wrong[0]}: "
                        f"{held[wrong[0]]['upvotes'], held[wrong[0]]['title'][:40]} vs {final[wrong[0]][:2]}")
    settled = [a for a in listed if a in held and (last - model.papers[a].listed).days >= 14
               and held[a]["upvotes"] != model.papers[a].upvotes]
    if settled:
        problems.append(f"{len(settled)} papers listed over two weeks ago lack their settled upvotes: {settled[:5]}")

    # sightings: each paper's upvotes as each new page showed them, day by day
    expected_history: dict[str, set] = {}
    seen = set()
    for s in served:
        if s.lost or s.digest in seen or s.day > last:
            continue
        seen.add(s.digest)
        for arxiv_id, upvotes, _, _ in s.papers:
            expected_history.setdefault(arxiv_id, set()).add((s.day, upvotes))
    history = (sightings.filter(pl.col("source") == "hf_daily_api")
               .join(papers.select("paper_id", "arxiv_id"), on="paper_id")
               .select("arxiv_id", pl.col("captured_at").dt.date().alias("day"), "upvotes").unique())
    got: dict[str, set] = {}
    for arxiv_id, day, upvotes in history.iter_rows():
        got.setdefault(arxiv_id, set()).add((day, upvotes))
    differ = sorted(a for a in set(expected_history) | set(got) if got.get(a) != expected_history.get(a))
    if differ:
        a = differ[0]
        problems.append(f"{len(differ)} papers' upvote histories differ from what was served, e.g. {a}: "
                        f"{sorted(got.get(a, set()))[:4]} vs {sorted(expected_history.get(a, set()))[:4]}")

    # a release for each day with news, none for a day without; one tag per version
    repo = sim.repo_server.repos[REPO]
    # one tag at a time, three columns: two years of releases do not fit in memory whole
    manifests = {tag: json.loads(repo.commits[sha]["manifest.json"]) for tag, sha in repo.tags.items()}
    day_of = {tag: dt.datetime.fromisoformat(m["created_at"]).date() for tag, m in manifests.items()}
    release_days = Counter(day_of.values())
    expected = {d for d in news_days(served) if first <= d <= last}
    for kill in sim.kills:
        if kill.run == "automation" and kill.point != "release:committed" and first <= kill.day <= last:
            expected.discard(kill.day)  # its news is released the next day
            expected.add(kill.day + dt.timedelta(days=1))
    actual = {d for d in release_days if first <= d <= last}
    if actual != expected:
        problems.append(f"releases on {sorted(actual - expected)[:5]} without news, none on "
                        f"{sorted(expected - actual)[:5]} with news")
    twice = [d for d, n in release_days.items() if n > 1]
    if twice:
        problems.append(f"more than one release on {twice[:5]}")
    tagged = set(repo.tags.values())
    untagged = [c for c in _main_history(repo) if c not in tagged and repo.parents[c] is not None]
    if untagged:
        problems.append(f"{len(untagged)} commits on main without a tag")

    # what each release holds is what the server had served by its day; ids never change
    tags_in_range = sorted(t for t, d in day_of.items() if first <= d <= last)
    picked = sorted({tags_in_range[round(i * (len(tags_in_range) - 1) / max(1, sample - 1))]
                     for i in range(sample)}) if tags_in_range else []
    ids: dict[str, str] = {}
    moved = set()
    upvotes, kept = {}, iter(s for s in served if not s.lost)  # served in time order: one pass for all tags
    pending = next(kept, None)
    picked_upvotes = {}
    for tag in sorted(manifests, key=lambda t: (day_of[t], t)):
        while pending is not None and pending.day <= day_of[tag]:
            upvotes.update((arxiv_id, up) for arxiv_id, up, _, _ in pending.papers)
            pending = next(kept, None)
        table = release_papers(repo, tag)
        if dict(zip(table["arxiv_id"], table["upvotes"])) != upvotes:
            problems.append(f"release {tag} does not hold what was served up to {day_of[tag]}")
        if tag in picked:
            picked_upvotes[tag] = dict(upvotes)
        for arxiv_id, paper_id in zip(table["arxiv_id"], table["paper_id"]):
            if ids.setdefault(arxiv_id, paper_id) != paper_id:
                moved.add(arxiv_id)
    moved |= {a for a, r in held.items() if ids.get(a, r["paper_id"]) != r["paper_id"]}
    if moved:
        problems.append(f"{len(moved)} papers changed id between releases: {sorted(moved)[:5]}")
    loaded = load_with_datasets(sim.repo_server.url, picked)
    for tag in picked:
        if loaded[tag] != picked_upvotes[tag]:
            problems.append(f"load_dataset(revision={tag!r}) does not give what was served up to {day_of[tag]}")

    # no check failed, no run left behind, no run failed but the killed ones
    failed_checks = [(d, name) for d, name, passed in sim.check_results if not passed and first <= d <= last]
    if failed_checks:
        problems.append(f"{len(failed_checks)} checks failed: {failed_checks[:5]}")
    unfinished = sim.instance.get_runs(filters=dg.RunsFilter(statuses=[
        dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.CANCELING]))
    if unfinished:
        problems.append(f"{len(unfinished)} runs left {unfinished[0].status.value}")
    failed_runs = {r.run_id for r in sim.instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))}
    killed = [k for k in sim.kills if k.killed]
    if len(failed_runs) != len(killed):
        problems.append(f"{len(failed_runs)} runs failed, {len(killed)} were killed")
    missed = [f"{k.day} {k.point}" for k in sim.kills if first <= k.day <= last and not k.killed]
    if missed:
        problems.append(f"planned kills that did not happen as planned: {missed}")
    return problems


def _main_history(repo) -> set[str]:
    commits, sha = set(), repo.branches.get("main")
    while sha:
        commits.add(sha)
        sha = repo.parents[sha]
    return commits


# ---------------------------------------------------------------------------------------------- the benchmark

def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def run_year(work: Path, model: Model, legs: list[tuple[dt.date, dt.date]], progress=print) -> list[dict]:
    """Run the legs (one a year) one after another on one work directory; figures and problems of each."""
    from bench.hub_repo_server import HubRepoServer

    figures = []
    with YearServer(model) as server, HubRepoServer(token=TOKEN) as repo_server:
        _set_environment(work, server.url, repo_server.url)
        sim = Simulation(work, model, server, repo_server, progress)
        for first, last in legs:
            before = {"store": _size(work / "data"), "served": len(server.served), "requests": server.requests,
                      "faults": Counter(server.faults), "runs": Counter(sim.runs), "tags": len(sim.repo_tags()),
                      "uploaded": _uploaded(repo_server)}
            started = time.monotonic()
            sim.run_days(first, last)
            wall = time.monotonic() - started
            problems = check(sim, first, last)
            days = (last - first).days + 1
            figures.append({
                "first_day": first.isoformat(), "last_day": last.isoformat(), "days": days,
                "wall_seconds": round(wall, 1), "seconds_per_day": round(wall / days, 2),
                "slowest_day_seconds": round(max(sim.day_seconds[-days:]), 1),
                "papers_listed": sum(len(ps) for d, ps in model.lists.items() if first <= d <= last),
                "runs": dict(sim.runs - before["runs"]), "releases": len(sim.repo_tags()) - before["tags"],
                "requests": server.requests - before["requests"],
                "faults": dict(server.faults - before["faults"]),
                "kills": [{"day": k.day.isoformat(), "run": k.run, "point": k.point, "killed": k.killed}
                          for k in sim.kills if first <= k.day <= last],
                "bytes_uploaded": _uploaded(repo_server) - before["uploaded"],
                "store_bytes_before": before["store"], "store_bytes_after": _size(work / "data"),
                "problems": problems})
            progress(f"{first}..{last}: {'held' if not problems else 'FAILED: ' + '; '.join(problems)}")
    return figures


def _uploaded(repo_server) -> int:
    """Bytes of every file sent in a commit (what the client uploaded)."""
    repo = repo_server.repos.get(REPO)
    if repo is None:
        return 0
    total = 0
    with repo_server.lock:
        order = list(repo.commits)
        for sha, sent in zip(order[1:], repo_server.uploaded):
            total += sum(len(repo.commits[sha][p]) for p in sent if p in repo.commits[sha])
    return total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.year", description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2024, 6, 3))
    parser.add_argument("--days", type=int, default=365, help="days in a year of the simulation")
    parser.add_argument("--years", type=int, default=2, help="years one after another on the same store")
    parser.add_argument("--work", type=Path, help="work directory (default: a temporary one, removed)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--record", action="store_true", help="write the figures into bench/results.json")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="papers-year-"))
    work.mkdir(parents=True, exist_ok=True)
    model = Model(args.start, args.days * args.years)
    legs = [(args.start + dt.timedelta(days=args.days * n), args.start + dt.timedelta(days=args.days * (n + 1) - 1))
            for n in range(args.years)]
    # The runs' own console logs go to runs.log in the work directory (the daemon keeps them out of
    # sight too); this process's progress goes to the terminal.
    terminal = os.fdopen(os.dup(2), "w", buffering=1)
    log = open(work / "runs.log", "ab")
    os.dup2(log.fileno(), 2)
    try:
        figures = run_year(work, model, legs, progress=lambda m: print(m, file=terminal))
    finally:
        os.dup2(terminal.fileno(), 2)
        log.close()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    out = {"measured_on": dt.date.today().isoformat(), "cores": os.cpu_count(), "years": figures}
    text = json.dumps(out, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    if args.record:
        path = Path(__file__).with_name("results.json")
        results = json.loads(path.read_text()) if path.exists() else {}
        results["year"] = out
        path.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if any(f["problems"] for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
