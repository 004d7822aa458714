"""The `Definitions` that `dagster dev -w workspace.yaml` and `papers run` load."""

from __future__ import annotations

import dagster as dg

from assets import stages
from assets.resources import DataDirResource

ALL_ASSETS = [stages.captures, stages.parse_captures, stages.resolve_papers, stages.catalog,
              stages.release_snapshot]

papers_job = dg.define_asset_job(
    "papers_job",
    selection=dg.AssetSelection.all(),
    description="Capture, parse, validate, resolve, store and release: the whole pipeline.",
)

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[papers_job],
    resources={"datadir": DataDirResource()},
)
