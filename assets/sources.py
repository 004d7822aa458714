"""The live sources as Dagster assets: daily papers (one partition a day), search and pages.

They only fetch: each writes its captures and fetch log under `data/fetched/`, and the `captures`
asset gathers them with the imported files. The main job leaves them out, so that it runs with no
network; `daily_scrape_job` runs them, one partition a day and up to 14 days a run.
"""

import datetime as dt
import warnings

import dagster as dg
import polars as pl

from assets.resources import DataDirResource
from pipeline import schema, store
from pipeline.paths import DataDir
from pipeline.sources.http import Client
from pipeline.sources.hub import FETCH_LOG, FIRST_DAY, Fetcher

# The partition set is part of the definitions, so its first day is read when the code loads.
DAILY_START = dg.EnvVar("PAPERS_DAILY_START")
daily_partitions = dg.DailyPartitionsDefinition(start_date=DAILY_START.get_value() or FIRST_DAY.isoformat(),
                                                end_offset=1)
HUB_URL = dg.EnvVar("PAPERS_HUB_URL")
TOKEN = dg.EnvVar("HF_TOKEN")


class HubResource(dg.ConfigurableResource):
    """Where the papers pages live (`base_url`, else `PAPERS_HUB_URL`, else the Hub) and how politely to
    ask. The token comes from `HF_TOKEN` only, read when the client is made."""

    base_url: str | None = None
    requests_per_second: float = 2.0
    timeout_seconds: float = 30.0
    max_bytes: int = 50 * 1024 * 1024
    attempts: int = 6

    def client(self) -> Client:
        return Client(self.base_url or HUB_URL.get_value() or "https://huggingface.co",
                      token=TOKEN.get_value() or None, per_second=self.requests_per_second,
                      timeout=self.timeout_seconds, max_bytes=self.max_bytes, attempts=self.attempts)


class DailyConfig(dg.Config):
    refresh: bool = False
    """Fetch pages captured before again (conditionally), to see their upvotes change."""


class SearchConfig(dg.Config):
    queries: list[str] = []
    page_urls: list[str] = []


def fetched_files(data_dir: DataDir, name: str) -> tuple:
    folder = data_dir.root / "fetched"
    return folder / f"{name}.captures.parquet", folder / f"{name}.log.parquet"


def _read(path, table) -> pl.DataFrame:
    return schema.upgrade(pl.read_parquet(path), table, str(path)) if path.exists() else schema.empty(table)


def run_fetch(context, hub: HubResource, data_dir: DataDir, works: dict) -> dg.MaterializeResult:
    """For each `name: work` in `works`, fetch with `work(fetcher)` and add what it got to the `name`
    files (each a commit of its own); fail with one clear line when nothing could be fetched at all."""
    new, logs = 0, []
    with hub.client() as client:
        for name, work in works.items():
            captures_path, log_path = fetched_files(data_dir, name)
            # One writer per fetched file (two runs of one day would each lose the other's log otherwise);
            # the captures and the log are one commit, so a crash cannot keep one without the other.
            with store.exclusive(data_dir, f"fetching {name}", captures_path.with_suffix(".lock")):
                old_captures, old_log = _read(captures_path, schema.CAPTURES), _read(log_path, FETCH_LOG)
                fetcher = Fetcher(client, data_dir, old_log, progress=context.log.info)
                work(fetcher)
                captures, log = fetcher.results()
                store.commit(data_dir, {captures_path: pl.concat([old_captures, captures]),
                                        log_path: pl.concat([old_log, log])}, label="fetch")
            new += captures.height
            logs.append(log)
    log = pl.concat(logs)
    outcomes = {k: v for k, v in log.group_by("outcome").len().iter_rows()}
    if log.height and outcomes.get("failed", 0) == log.height:
        reasons = sorted(set(log["reason"].drop_nulls()))
        raise dg.Failure(description=f"could not fetch anything from {client.base_url}: {'; '.join(reasons)[:500]}",
                         allow_retries=False)  # the client has retried each request already
    failed = sorted({key.rsplit("/", 1)[0] for key in log.filter(pl.col("outcome") == "failed")["key"]})
    folder = data_dir.root / "fetched"
    return dg.MaterializeResult(metadata={"new_captures": new, "requests": log.height, "outcomes": outcomes,
                                          "failed_pages_of": dg.MetadataValue.json(failed),
                                          "path": dg.MetadataValue.path(str(folder))})


# `backfill_policy` is beta in Dagster 1.13; it has worked as documented since 1.5.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)
NETWORK = dg.RetryPolicy(max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.FULL)
RECAPTURE_DAYS = 14  # upvotes keep changing for about two weeks after a paper is listed


@dg.asset(partitions_def=daily_partitions, group_name="capture", kinds={"huggingface"}, pool="hf_api",
          retry_policy=NETWORK, owners=["team:data-eng"],
          backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=RECAPTURE_DAYS))
def daily_papers(context: dg.AssetExecutionContext, config: DailyConfig, hub: HubResource,
                 datadir: DataDirResource) -> dg.MaterializeResult:
    """The Hub's Daily Papers, every page of `GET /api/daily_papers?date=…`: one partition a day, and
    a run fetches a range of days (the daily schedule's two weeks, or a backfill's days, 14 a run)."""
    days = [dt.date.fromisoformat(key) for key in context.partition_keys]

    def day(date: dt.date):
        return lambda fetcher: fetcher.daily(date, refresh=config.refresh)

    return run_fetch(context, hub, datadir.get(), {f"daily/{d.isoformat()}": day(d) for d in days})


@dg.asset(group_name="capture", kinds={"huggingface"}, pool="hf_api", retry_policy=NETWORK,
          owners=["team:data-eng"])
def searched_papers(context: dg.AssetExecutionContext, config: SearchConfig, hub: HubResource,
                    datadir: DataDirResource) -> dg.MaterializeResult:
    """The papers search API for each configured query, and any papers-page URLs (HTML)."""

    def work(fetcher: Fetcher) -> None:
        for query in config.queries:
            fetcher.search(query)
        fetcher.pages(config.page_urls)

    return run_fetch(context, hub, datadir.get(), {"search": work})


LIVE_ASSETS = [daily_papers, searched_papers]
