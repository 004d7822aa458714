"""The `Definitions` that `dagster dev -w workspace.yaml` and `papers run` load."""

from __future__ import annotations

import logging
import sys

import dagster as dg

from assets import sources, stages
from assets.resources import DataDirResource

# The pipeline from the captures on: it needs no network.
ALL_ASSETS = [stages.captures, stages.parse_captures, stages.resolve_papers, stages.catalog,
              stages.release_snapshot]

papers_job = dg.define_asset_job(
    "papers_job",
    selection=dg.AssetSelection.assets(*ALL_ASSETS),
    description="Import, parse, validate, resolve, store and release: the whole pipeline from the captures on.",
)

daily_scrape_job = dg.define_asset_job(
    "daily_scrape_job",
    selection=dg.AssetSelection.assets(sources.daily_papers),
    partitions_def=sources.daily_partitions,
    description="Fetch the Hub's Daily Papers, one day a partition (backfill a range from the UI).",
)

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
    jobs=[papers_job, daily_scrape_job],
    resources={"datadir": DataDirResource(), "hub": sources.HubResource()},
    loggers={"terminal": terminal},
)
