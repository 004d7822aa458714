"""One asset (or multi-asset) per stage of the architecture; each calls into `pipeline/`."""

import datetime as dt
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import polars as pl

from assets import metadata, sources
from assets.resources import DataDirResource, ReleaseTargetResource
from pipeline import charts, publish, release, schema, stages, store, validate
from pipeline.paths import DataDir, write_error


class CapturesConfig(dg.Config):
    captures_dir: str | None = None
    """Folder of saved captures to import (none by default: only the fetched pages are gathered;
    `papers run` gives the bundled samples, the inbox sensor the inbox)."""
    captured_at: str | None = None
    """ISO-8601 time of capture for every file of this import, when known better than the page says."""


class ParseConfig(dg.Config):
    full_refresh: bool = False
    """Parse and validate every capture again (after a parser or suite change), not only new ones."""


class ResolveConfig(dg.Config):
    full_refresh: bool = False
    """Group every listing again from scratch, keeping the ids of the previous resolution (or release)."""


# Declarative automation, for when the default automation condition sensor is on: every stage runs
# once anything upstream of it changed (a fetched day, a search), in the same run as its parents;
# unmaterialized parents (days never fetched) do not hold it back. The release also waits for the
# blocking checks of what it reads.
AUTO = dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing()).with_label("eager")
RELEASE_AUTO = (AUTO & dg.AutomationCondition.all_deps_blocking_checks_passed()).with_label(
    "eager, blocking checks passed")


@contextmanager
def user_errors(data_dir: DataDir):
    """What an operator can cause or meet (a busy, damaged or unaudited data directory, a refused
    release, a full disk or a read-only folder) fails the step with its one-line message, not a
    traceback; Dagster does not retry it. A write error that names no file names `data_dir`."""
    try:
        yield
    except (store.StoreError, store.Busy, release.ReleaseRefused, publish.PublishError, publish.PublishConflict,
            schema.SchemaError) as err:
        raise dg.Failure(description=str(err), allow_retries=False) from None
    except OSError as err:
        if (message := write_error(err, data_dir.root)) is None:
            raise
        raise dg.Failure(description=message, allow_retries=False) from None


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _parse_time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


@dg.asset(group_name="capture", kinds={"parquet"}, owners=["team:data-eng"],
          deps=[sources.daily_papers, sources.searched_papers], automation_condition=AUTO)
def captures(context: dg.AssetExecutionContext, config: CapturesConfig, datadir: DataDirResource) -> dg.MaterializeResult:
    """Pages captured so far: every imported or fetched page, its bytes kept under their sha256."""
    folder = Path(config.captures_dir).expanduser() if config.captures_dir else None
    data_dir = datadir.get()
    with user_errors(data_dir):
        done = stages.capture(data_dir, folder, _parse_time(config.captured_at))
    context.log.info(f"{plural(done.new, 'new capture')} from {folder or 'no folder'} and the fetched pages "
                     f"({done.table.height} in all)")
    if done.skipped:
        context.log.warning(f"{len(done.skipped)} files of {folder} skipped: "
                            + "; ".join(f"{path} ({why})" for path, why in list(done.skipped.items())[:10])
                            + (" …" if len(done.skipped) > 10 else ""))
    return dg.MaterializeResult(metadata={
        **metadata.table(done.table, done.path, ["capture_id", "source", "format", "origin", "captured_at"]),
        "new_captures": done.new,
        "folder": str(folder or ""),
        "skipped_files": dg.MetadataValue.json(done.skipped),
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
    against the listings suite, and commit them only if no blocking expectation failed."""
    data_dir = datadir.get()
    with user_errors(data_dir):
        done = stages.parse_new(data_dir, config.full_refresh)
    state = "committed" if done.committed else ("NOT committed: a blocking expectation failed"
                                                if done.report.blocking_failures else "nothing new")
    context.log.info(f"parsed {plural(done.parsed, 'new capture')} ({done.captures} in all): "
                     f"{plural(done.new_listings, 'new listing')}, {plural(done.new_rejects, 'new reject')} "
                     f"({done.quarantined} quarantined by the listings suite); {state}")
    listings, rejects = done.listings, done.rejects
    yield dg.MaterializeResult(asset_key="listings", metadata={
        **metadata.table(listings, store.location(data_dir, "listings"), ["title", "published_on", "upvotes", "source"]),
        "committed": done.committed,
        "by_source": metadata.counts_by(listings, "source"),
    })
    by_rule = metadata.counts_by(rejects, "rule")
    yield dg.MaterializeResult(asset_key="rejects", metadata={
        **metadata.table(rejects, store.location(data_dir, "rejects"), ["rule", "message", "capture_id", "position"]),
        "committed": done.committed,
        "by_rule": by_rule,
        "summary": metadata.summary(f"{done.new_rejects:,} new rejects ({sum(by_rule.values()):,} in all)", {
            "from parsing": f"{done.new_rejects - done.quarantined:,}",
            "quarantined by expectations/listings.json": f"{done.quarantined:,}",
            **{f"rule `{rule}`": f"{n:,}" for rule, n in by_rule.items()}}),
    })
    yield contract_check(done.report, "listings_contract", "listings")


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
def resolve_papers(context: dg.AssetExecutionContext, config: ResolveConfig, datadir: DataDirResource,
                   release_target: ReleaseTargetResource):
    """Resolve the listings into papers, check the papers suite on them, and commit papers,
    sightings and merges only if it passed."""
    data_dir = datadir.get()
    with user_errors(data_dir):
        done = stages.resolve(data_dir, release_target.get(data_dir), config.full_refresh)
    merges = done.merges
    papers = done.papers.lazy().select("published_on", "upvotes", "arxiv_id", "n_sightings").collect()
    aliases = done.aliases.lazy().select(pl.len()).collect().item()
    by_rule = metadata.counts_by(merges, "rule")
    state = ("committed" if done.committed else "no listings since the last resolution: the tables as committed"
             if done.unchanged else "NOT committed: the papers suite failed")
    context.log.info(f"resolved {done.listings} listings into {papers.height} papers; rules {by_rule}; {state}")
    # The committed files the metadata shows (none for papers the suite refused): charts drawn of
    # the same files are those of the last materialization.
    files = ",".join(p["sha256"] for p in store.parts(data_dir, "papers")) if done.committed or done.unchanged else ""
    yield dg.MaterializeResult(asset_key="papers", metadata={
        **metadata.table(done.papers, store.location(data_dir, "papers"),
                         ["paper_id", "title", "published_on", "upvotes", "n_sightings"]),
        "committed": done.committed,
        "duplicates_merged": done.listings - papers.height,
        "aliases": aliases,
        "summary": metadata.summary(f"{papers.height:,} papers from {done.listings:,} listings", {
            "with an arXiv id": f"{papers['arxiv_id'].is_not_null().sum():,}",
            "seen more than once": f"{(papers['n_sightings'] > 1).sum():,}",
            "merged by rule": ", ".join(f"{rule} {n:,}" for rule, n in by_rule.items()),
            "new ids that became aliases": f"{aliases:,}"}),
        "files_sha256": files,
        **(_charts_of(context, files) or {
            "papers_per_day": metadata.plot(charts.papers_per(papers, "%Y-%m-%d", "Papers per day (last 60 days)",
                                                              60), "papers per day"),
            "upvotes": metadata.plot(charts.upvotes_histogram(papers), "papers by upvotes")}),
    })
    yield dg.MaterializeResult(asset_key="sightings", metadata={
        **metadata.table(done.sightings, data_dir.table("sightings")), "committed": done.committed})
    yield dg.MaterializeResult(asset_key="merges", metadata={
        **metadata.table(merges, data_dir.table("merges")), "committed": done.committed, "by_rule": by_rule})
    yield contract_check(done.report, "papers_contract", "papers")


def _charts_of(context: dg.AssetExecutionContext, files: str) -> dict | None:
    """The charts of the last materialization of `papers`, if it showed these very files (drawing
    them again imports matplotlib: at a million listings, 0.9 s of a 5 s run with nothing new)."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey("papers")) if files else None
    shown = event.asset_materialization.metadata if event is not None and event.asset_materialization else {}
    names = ("papers_per_day", "upvotes")
    if "files_sha256" not in shown or shown["files_sha256"].value != files or not set(names) <= shown.keys():
        return None
    return {name: shown[name] for name in names}


@dg.asset(deps=["captures", "listings", "rejects", "papers", "sightings", "merges"], group_name="store",
          kinds={"duckdb"}, owners=["team:data-eng"], automation_condition=AUTO)
def catalog(context: dg.AssetExecutionContext, datadir: DataDirResource) -> dg.MaterializeResult:
    """DuckDB catalog: one view per table over its Parquet file."""
    data_dir = datadir.get()
    with user_errors(data_dir):
        path, counts = stages.catalog(data_dir)
    context.log.info(f"catalog {path}: {counts}")
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path)), "views": counts})


class ReleaseConfig(dg.Config):
    allow_removals: bool = False
    """Publish even if the version removes more than 1 % of the papers the previous one had."""


@dg.asset(name="release", deps=["papers", "sightings", "captures", "catalog"], group_name="release",
          kinds={"git", "huggingface"}, owners=["team:data-eng"], automation_condition=RELEASE_AUTO)
def release_snapshot(context: dg.AssetExecutionContext, config: ReleaseConfig, datadir: DataDirResource,
                     release_target: ReleaseTargetResource) -> dg.MaterializeResult:
    """A versioned snapshot of the audited tables on the Hub (or the local git repository): one
    commit and one tag per version, only the changed files uploaded, nothing when the data did not
    change; never from tables whose audit did not pass, never removing papers unasked."""
    data_dir = datadir.get()
    with user_errors(data_dir):
        done = stages.release_tables(data_dir, release_target.get(data_dir), dt.datetime.now(dt.timezone.utc),
                                     config.allow_removals)
    if done.finished:
        context.log.warning(f"tagged {done.finished}: an earlier run committed it and stopped before tagging")
    prepared, published = done.prepared, done.published
    if published is None:
        latest = done.current.manifest.get("version", "")
        context.log.info(f"data unchanged since {latest}: nothing published")
        return dg.MaterializeResult(metadata={"published": False, "version": latest})
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
