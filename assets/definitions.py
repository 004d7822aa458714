"""The `Definitions` that `dagster dev -w workspace.yaml` and `papers run` load."""

import datetime as dt
import hashlib
import json
import logging
import sys

import dagster as dg

from assets import sources, stages
from assets.sources import RECAPTURE_DAYS
from assets.resources import DataDirResource, ReleaseTargetResource

# The pipeline from the captures on: it needs no network.
ALL_ASSETS = [stages.captures, stages.parse_captures, stages.resolve_papers, stages.catalog,
              stages.release_snapshot]

papers_job = dg.define_asset_job(
    "papers_job",
    selection=dg.AssetSelection.assets(*ALL_ASSETS),
    description="Import, parse, validate, resolve, store and release: the whole pipeline from the captures on.",
)

release_job = dg.define_asset_job(
    "release_job",
    selection=dg.AssetSelection.assets(stages.release_snapshot),
    description="Publish the current tables as a new version if they changed (re-publish after a failed release).",
)

daily_scrape_job = dg.define_asset_job(
    "daily_scrape_job",
    selection=dg.AssetSelection.assets(sources.daily_papers),
    partitions_def=sources.daily_partitions,
    description="Fetch the Hub's Daily Papers, one day a partition (backfill a range from the UI).",
)

search_job = dg.define_asset_job(
    "search_job",
    selection=dg.AssetSelection.assets(sources.searched_papers),
    description="Fetch the configured paper searches and papers pages.",
)

@dg.schedule(job=daily_scrape_job, cron_schedule="30 6 * * *", execution_timezone="UTC",
             description=f"Every morning, fetch the last {RECAPTURE_DAYS} days of daily papers again (conditionally), "
                         "in one run: each changed page is a new capture, so upvote histories grow.")
def daily_papers_schedule(context: dg.ScheduleEvaluationContext):
    today = context.scheduled_execution_time.date()
    first = max(today - dt.timedelta(days=RECAPTURE_DAYS - 1),
                dt.date.fromisoformat(sources.daily_partitions.start.strftime("%Y-%m-%d")))
    if first > today:
        return dg.SkipReason(f"{today} is before the first day of daily papers")
    return dg.RunRequest(run_key=f"{first.isoformat()}..{today.isoformat()}",
                         # Dagster's tags for a run over a range of partitions
                         tags={"dagster/asset_partition_range_start": first.isoformat(),
                               "dagster/asset_partition_range_end": today.isoformat()},
                         run_config={"ops": {"daily_papers": {"config": {"refresh": True}}}})


SETTLE_SECONDS = 10  # a file changed more recently may still be being written


@dg.sensor(job=papers_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Runs the pipeline on the files dropped into the inbox folder (PAPERS_INBOX, default "
                       "<data dir>/inbox) since it last looked.")
def captures_folder_sensor(context: dg.SensorEvaluationContext, datadir: DataDirResource):
    folder = datadir.inbox()
    if not folder.is_dir():
        return dg.SkipReason(f"no inbox folder {folder}")
    now = dt.datetime.now().timestamp()
    settled = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        info = path.stat()
        if now - info.st_mtime >= SETTLE_SECONDS:
            settled[path.relative_to(folder).as_posix()] = f"{info.st_size}:{info.st_mtime_ns}"
    seen = json.loads(context.cursor) if context.cursor else {}
    new = sorted(name for name, stamp in settled.items() if seen.get(name) != stamp)
    if not new:
        return dg.SkipReason(f"no new files in {folder}")
    key = hashlib.sha256(json.dumps([[n, settled[n]] for n in new]).encode()).hexdigest()[:16]
    context.log.info(f"{len(new)} new files in {folder}: {', '.join(new[:5])}{' …' if len(new) > 5 else ''}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=key, run_config={"ops": {"captures": {"config": {"captures_dir": str(folder)}}}},
                                    tags={"papers/new_files": str(len(new))})],
        cursor=json.dumps({**seen, **settled}, sort_keys=True))


@dg.logger(description="One line an event, no stack traces: progress for the `papers` command line.")
def terminal(init_context):
    log = logging.getLogger("papers.terminal")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        handler.addFilter(_first_line)
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.INFO)
    return log


def _first_line(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    # Dagster's line is "job - run id - [pid -] step - [EVENT -] message"; keep the step and the message.
    parts = message.split(" - ")
    text = " - ".join(parts[3:] if len(parts) > 3 else parts).split("\n")[0]
    record.msg, record.args = text, ()
    return bool(text.strip())


defs = dg.Definitions(
    assets=[*sources.LIVE_ASSETS, *ALL_ASSETS],
    jobs=[papers_job, release_job, daily_scrape_job, search_job],
    schedules=[daily_papers_schedule],
    sensors=[captures_folder_sensor],
    resources={"datadir": DataDirResource(), "release_target": ReleaseTargetResource(), "hub": sources.HubResource()},
    loggers={"terminal": terminal},
)
