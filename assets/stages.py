"""One asset (or multi-asset) per stage of the architecture; each calls into `pipeline/`."""

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl

from assets import metadata, sources
from assets.resources import DataDirResource, ReleaseTargetResource
from pipeline import charts, dedup, parse, publish, schema, store, validate
from pipeline.paths import SAMPLE_CAPTURES
from pipeline.sources.folder import import_folder


class CapturesConfig(dg.Config):
    captures_dir: str | None = None
    """Folder of saved captures to import (default: the bundled samples)."""
    captured_at: str | None = None
    """ISO-8601 time of capture for every file of this import, when known better than the page says."""


class ParseConfig(dg.Config):
    full_refresh: bool = False
    """Parse and validate every capture again (after a parser or suite change), not only new ones."""


# Declarative automation, for when the default automation condition sensor is on: every stage runs
# once anything upstream of it changed (a fetched day, a search), in the same run as its parents;
# unmaterialized parents (days never fetched) do not hold it back. The release also waits for the
# blocking checks of what it reads.
AUTO = dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing()).with_label("eager")
RELEASE_AUTO = (AUTO & dg.AutomationCondition.all_deps_blocking_checks_passed()).with_label(
    "eager, blocking checks passed")


def _parse_time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


@dg.asset(group_name="capture", kinds={"parquet"}, owners=["team:data-eng"],
          deps=[sources.daily_papers, sources.searched_papers], automation_condition=AUTO)
def captures(context: dg.AssetExecutionContext, config: CapturesConfig, datadir: DataDirResource) -> dg.MaterializeResult:
    """Pages captured so far: every imported or fetched page, its bytes kept under their sha256."""
    data_dir = datadir.get()
    with store.exclusive(data_dir, "captures"):
        folder = Path(config.captures_dir).expanduser() if config.captures_dir else SAMPLE_CAPTURES
        known = store.read_table(data_dir, "captures")
        new = import_folder(data_dir, folder, set(known["capture_id"]), _parse_time(config.captured_at))
        fetched = [pl.read_parquet(p) for p in sorted((data_dir.root / "fetched").rglob("*.captures.parquet"))]
        table = (pl.concat([known, new, *[schema.conform(f, schema.CAPTURES) for f in fetched]])
                 .unique("capture_id", keep="first", maintain_order=True).sort(["captured_at", "capture_id"]))
        new = table.join(known, on="capture_id", how="anti")
        path = store.write_table(data_dir, "captures", table)
        context.log.info(f"{new.height} new captures from {folder} and the fetched pages ({table.height} in all)")
        return dg.MaterializeResult(metadata={
            **metadata.table(table, path, ["capture_id", "source", "format", "origin", "captured_at"]),
            "new_captures": new.height,
            "folder": str(folder),
        })


def contract_check(report: validate.Report, check_name: str, asset: str) -> dg.AssetCheckResult:
    """A suite's outcome as an asset check: failed when any expectation failed; ERROR (which stops
    everything downstream) when a blocking one did, WARN when the failing rows were quarantined."""
    failed = report.failed
    sample = {o.rule: o.sample for o in failed if o.sample}
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=check_name,
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR if report.blocking_failures else dg.AssetCheckSeverity.WARN,
        metadata={
            "suite": f"expectations/{report.suite}.json",
            "expectations": len(report.outcomes),
            "failed_expectations": dg.MetadataValue.json(report.summary()),
            "blocking_failures": [o.rule for o in report.blocking_failures],
            "sample_bad_rows": dg.MetadataValue.json(sample),
            **({"data_docs": dg.MetadataValue.path(str(report.docs_index))} if report.docs_index else {}),
        },
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec("listings", deps=["captures"], group_name="parse", kinds={"parquet"}, automation_condition=AUTO,
                     owners=["team:data-eng"],
                     description="One row per entry seen on a captured page that passed the listings suite."),
        dg.AssetSpec("rejects", deps=["captures"], group_name="parse", kinds={"parquet"}, automation_condition=AUTO,
                     owners=["team:data-eng"],
                     description="Every entry (or page) that could not become a listing, with the rule and why: "
                                 "parse failures and rows quarantined by the listings suite."),
    ],
    check_specs=[dg.AssetCheckSpec("listings_contract", asset="listings", blocking=True,
                                   description="The Great Expectations suite expectations/listings.json")],
)
def parse_captures(context: dg.AssetExecutionContext, config: ParseConfig, datadir: DataDirResource):
    """Parse the captures not parsed yet (all of them with `full_refresh`), validate the new listings
    against the listings suite, and add them to the tables."""
    data_dir = datadir.get()
    with store.exclusive(data_dir, "parse"):
        captures_table = store.read_table(data_dir, "captures")
        known_listings, known_rejects = store.read_table(data_dir, "listings"), store.read_table(data_dir, "rejects")
        if config.full_refresh:
            known_listings, known_rejects = known_listings.clear(), known_rejects.clear()
        done = pl.concat([known_listings["capture_id"], known_rejects["capture_id"]])
        todo = captures_table.filter(~pl.col("capture_id").is_in(done.implode()))
        parsed, rejects = parse.parse_captures(todo, data_dir.root)
        # With nothing new, the table as it stands is what the contract is checked on.
        report = validate.validate(parsed if todo.height else known_listings, "listings", "listing_id",
                                   data_dir.validation_docs)
        new_listings, quarantined = validate.quarantine(parsed, report)
        listings = pl.concat([known_listings, new_listings])
        rejects = pl.concat([known_rejects, rejects, quarantined])
        paths = store.write_tables(data_dir, {"listings": listings, "rejects": rejects})
        listings_path, rejects_path = paths["listings"], paths["rejects"]
        context.log.info(f"parsed {todo.height} new captures ({captures_table.height} in all): {new_listings.height} "
                         f"new listings, {rejects.height - known_rejects.height} new rejects "
                         f"({quarantined.height} quarantined by the listings suite)")
        yield dg.MaterializeResult(asset_key="listings", metadata={
            **metadata.table(listings, listings_path, ["title", "published_on", "upvotes", "source"]),
            "by_source": metadata.counts_by(listings, "source"),
        })
        new_rejects = rejects.height - known_rejects.height
        yield dg.MaterializeResult(asset_key="rejects", metadata={
            **metadata.table(rejects, rejects_path, ["rule", "message", "capture_id", "position"]),
            "by_rule": metadata.counts_by(rejects, "rule"),
            "summary": metadata.summary(f"{new_rejects:,} new rejects ({rejects.height:,} in all)", {
                "from parsing": f"{new_rejects - quarantined.height:,}",
                "quarantined by expectations/listings.json": f"{quarantined.height:,}",
                **{f"rule `{rule}`": f"{n:,}" for rule, n in metadata.counts_by(rejects, "rule").items()}}),
        })
        yield contract_check(report, "listings_contract", "listings")


@dg.multi_asset(
    specs=[
        dg.AssetSpec("papers", deps=["listings"], group_name="resolve", kinds={"parquet"}, automation_condition=AUTO,
                     owners=["team:data-eng"],
                     description="One row per paper, with a stable paper_id."),
        dg.AssetSpec("sightings", deps=["listings"], group_name="resolve", kinds={"parquet"}, automation_condition=AUTO,
                     owners=["team:data-eng"],
                     description="Every listing of every paper: provenance and upvote history."),
        dg.AssetSpec("merges", deps=["listings"], group_name="resolve", kinds={"parquet"}, automation_condition=AUTO,
                     owners=["team:data-eng"],
                     description="Each listing, its paper, the rule that matched it and the score."),
    ],
    check_specs=[dg.AssetCheckSpec("papers_contract", asset="papers", blocking=True,
                                   description="The Great Expectations suite expectations/papers.json; "
                                               "a failure stops the release")],
)
def resolve_papers(context: dg.AssetExecutionContext, datadir: DataDirResource,
                   release_target: ReleaseTargetResource):
    data_dir = datadir.get()
    with store.exclusive(data_dir, "resolve"):
        listings = store.read_table(data_dir, "listings")
        state = store.read_table(data_dir, "resolver_state")
        aliases = store.read_table(data_dir, "aliases")
        previous_ids = None
        if state.is_empty():  # a fresh data directory: the previous release's ids, if any, stay
            previous = publish.latest(release_target.get(data_dir)).tables
            if previous is not None:
                previous_ids, aliases = previous["sightings"].select("listing_id", "paper_id"), previous["aliases"]
        # The previous papers and sightings are kept for every paper no new listing reaches.
        previous = None if state.is_empty() else {name: store.read_table(data_dir, name) for name in ("papers", "sightings")}
        resolution = dedup.resolve(listings, state, store.read_table(data_dir, "merges"), previous_ids, aliases, previous)
        tables = {name: getattr(resolution, name) for name in ("papers", "sightings", "merges", "aliases")}
        paths = store.write_tables(data_dir, {**tables, "resolver_state": resolution.state})
        papers, merges = resolution.papers, resolution.merges
        by_rule = metadata.counts_by(merges, "rule")
        context.log.info(f"resolved {listings.height} listings into {papers.height} papers; rules {by_rule}")
        yield dg.MaterializeResult(asset_key="papers", metadata={
            **metadata.table(papers, paths["papers"], ["paper_id", "title", "published_on", "upvotes", "n_sightings"]),
            "duplicates_merged": listings.height - papers.height,
            "aliases": resolution.aliases.height,
            "summary": metadata.summary(f"{papers.height:,} papers from {listings.height:,} listings", {
                "with an arXiv id": f"{papers['arxiv_id'].is_not_null().sum():,}",
                "seen more than once": f"{(papers['n_sightings'] > 1).sum():,}",
                "merged by rule": ", ".join(f"{rule} {n:,}" for rule, n in by_rule.items()),
                "new ids that became aliases": f"{resolution.aliases.height:,}"}),
            "papers_per_day": metadata.plot(charts.papers_per(papers, "%Y-%m-%d", "Papers per day (last 60 days)", 60),
                                            "papers per day"),
            "upvotes": metadata.plot(charts.upvotes_histogram(papers), "papers by upvotes"),
        })
        yield dg.MaterializeResult(asset_key="sightings", metadata=metadata.table(resolution.sightings, paths["sightings"]))
        yield dg.MaterializeResult(asset_key="merges", metadata={
            **metadata.table(merges, paths["merges"]), "by_rule": by_rule})
        yield contract_check(validate.validate(papers, "papers", "paper_id", data_dir.validation_docs),
                             "papers_contract", "papers")


@dg.asset(deps=["captures", "listings", "rejects", "papers", "sightings", "merges"], group_name="store",
          kinds={"duckdb"}, owners=["team:data-eng"], automation_condition=AUTO)
def catalog(context: dg.AssetExecutionContext, datadir: DataDirResource) -> dg.MaterializeResult:
    """DuckDB catalog: one view per table over its Parquet file."""
    data_dir = datadir.get()
    with store.exclusive(data_dir, "catalog"):
        path = store.write_catalog(data_dir)
        with store.connect_catalog(data_dir) as con:
            counts = {name: con.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in store.VIEW_TABLES}
        context.log.info(f"catalog {path}: {counts}")
        return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path)), "views": counts})


@dg.asset(name="release", deps=["papers", "sightings", "captures", "catalog"], group_name="release",
          kinds={"git", "huggingface"}, owners=["team:data-eng"], automation_condition=RELEASE_AUTO)
def release_snapshot(context: dg.AssetExecutionContext, datadir: DataDirResource,
                     release_target: ReleaseTargetResource) -> dg.MaterializeResult:
    """A versioned snapshot of the dataset on the Hub (or the local git repository): one commit and
    one tag per version, only the changed files uploaded, nothing when the data did not change."""
    data_dir = datadir.get()
    with store.exclusive(data_dir, "release"):
        target = release_target.get(data_dir)
        current = publish.latest(target)
        if finished := publish.finish_interrupted(target, current):
            context.log.warning(f"tagged {finished}: an earlier run committed it and stopped before tagging")
        prepared = publish.prepare_from_store(target, current, data_dir, dt.datetime.now(dt.timezone.utc))
        if prepared is None:
            latest = current.manifest.get("version", "")
            context.log.info(f"data unchanged since {latest}: nothing published")
            return dg.MaterializeResult(metadata={"published": False, "version": latest})
        published = publish.publish(target, prepared, current)
        context.log.info(f"published {published.version} ({prepared.message}) to {published.location}: "
                         f"{len(published.uploaded)} files uploaded, {len(published.deleted)} deleted")
        location = published.location
        return dg.MaterializeResult(metadata={
            "published": True,
            "version": published.version,
            "commit": published.commit,
            "location": dg.MetadataValue.url(location) if location.startswith("http") else dg.MetadataValue.path(location),
            "uploaded": dg.MetadataValue.json(published.uploaded),
            "deleted": dg.MetadataValue.json(published.deleted),
            "row_counts": prepared.counts,
            "changes": metadata.counts_by(prepared.changes, "change"),
            "changelog": dg.MetadataValue.md(prepared.changelog_section),
        })
