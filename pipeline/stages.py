"""The stages on a data directory, free of Dagster: write, audit, publish.

Each stage reads what it needs, computes its tables, runs its Great Expectations suite on them and
commits them (with the audit, in the ledger) only when no blocking expectation failed; rows that a
row-level rule quarantines go to `rejects` in the same commit. A release reads only tables whose
audit passed, and refuses to remove more than a few of the papers the previous version had unless
the operator allows it. The Dagster assets call these functions and report their results; a
notebook can call them on a data directory just the same.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pipeline import dedup, faults, parse, publish, release, schema, store, validate, workers
from pipeline.paths import DataDir
from pipeline.sources.folder import folder_entries, import_folder, skipped_files


@dataclass
class Captured:
    table: pl.DataFrame
    new: int  # captures the table did not have before
    path: Path
    skipped: dict[str, str] = field(default_factory=dict)  # files of the folder not imported, and why


def capture(data_dir: DataDir, folder: Path | None = None, captured_at: dt.datetime | None = None) -> Captured:
    """Import the files of `folder` not imported yet and gather every capture: the table is rebuilt
    from the import records and the fetched pages' records, which are never rewritten, so a lost
    or damaged `captures` file comes back whole."""
    with store.exclusive(data_dir, "captures"):
        _keep_legacy_imports(data_dir)
        records = _frames(data_dir.imports.glob("*.parquet"))
        fetched = _frames((data_dir.root / "fetched").rglob("*.captures.parquet"))
        known = set(pl.concat([r["capture_id"] for r in records + fetched] or [pl.Series([], dtype=pl.String)]))
        entries = folder_entries(folder) if folder is not None else []
        new = (import_folder(data_dir, folder, known, captured_at, entries) if folder is not None
               else schema.empty(schema.CAPTURES))
        table = (pl.concat([*records, new, *fetched]).unique("capture_id", keep="first", maintain_order=True)
                 .sort(["captured_at", "capture_id"]))
        before = store.read_ledger(data_dir).get("captures", {}).get("rows", 0)
        extra = {}
        if new.height:
            name = hashlib.sha256("\n".join(sorted(new["capture_id"])).encode()).hexdigest()[:16]
            extra[data_dir.imports / f"{name}.parquet"] = new
        paths = store.write_tables(data_dir, {"captures": table}, label="captures", extra=extra)
        return Captured(table, table.height - before, paths["captures"],
                        skipped_files(folder, entries) if folder is not None else {})


def _frames(paths) -> list[pl.DataFrame]:
    return [schema.upgrade(pl.read_parquet(p), schema.CAPTURES, str(p)) for p in sorted(paths)]


def _keep_legacy_imports(data_dir: DataDir) -> None:
    """A data directory from before import records: its imported captures become one record."""
    if data_dir.imports.exists() or not data_dir.table("captures").exists():
        return
    fetched = _frames((data_dir.root / "fetched").rglob("*.captures.parquet"))
    legacy = store.read_table(data_dir, "captures")
    if fetched:
        legacy = legacy.join(pl.concat(fetched).select("capture_id"), on="capture_id", how="anti")
    store.commit(data_dir, {data_dir.imports / "legacy.parquet": legacy}, "legacy")


@dataclass
class Parsed:
    listings: pl.LazyFrame  # the table as committed (or as it stays, when nothing was committed)
    rejects: pl.LazyFrame
    parsed: int  # captures parsed by this run
    captures: int  # captures in all
    new_listings: int
    new_rejects: int
    quarantined: int
    report: validate.Report  # the row-level rules on the new rows, the table-level ones on the table
    committed: bool


def parse_new(data_dir: DataDir, full_refresh: bool = False) -> Parsed:
    """Parse the captures not parsed yet (all of them with `full_refresh`), quarantine the new rows
    that break a row-level rule, check the table-level rules on the listings as they would be, and
    commit the new listings, rejects and parse records together (as new parts of those tables), or
    nothing. Only the columns the table-level rules read are read back from the listings (when
    their last audit passed by the suite as it is now, only those of the rules over the whole
    table: the rules that judge each row alone judged those rows when they were written). With
    nothing to parse, listings that their last audit passed by the suite as it is now are only
    checked to be the files committed (the suite changed: its table-level rules run again)."""
    with store.exclusive(data_dir, "parse"):
        captures = store.read_table(data_dir, "captures")
        done, recorded = (schema.empty(schema.PARSED), True) if full_refresh else _parsed_so_far(data_dir)
        todo = captures.join(done.select("capture_id"), on="capture_id", how="anti")
        audit = store.last_audit(store.read_ledger(data_dir), "listings")
        if not full_refresh and recorded and not todo.height and _audited_as_is(audit, "listings"):
            # Nothing to parse, and the listings as the suite audited them: nothing to check again.
            store.check(data_dir, "listings")
            report = validate.Report("listings", validate.as_audited("listings", audit, only=validate.BLOCK))
            return Parsed(store.scan_table(data_dir, "listings"), store.scan_table(data_dir, "rejects"), 0,
                          captures.height, 0, 0, 0, report, False)
        validate.prefetch()  # (on a day, 2.5 s of the stage's 5.5 s, while the listings are read)
        table_columns = validate.columns_read("listings", "listing_id", only=validate.BLOCK)
        # The listings committed passed this suite's table-level rules that judge each row alone
        # when they were written: of them, only what the rules over the whole table read is read.
        judged = not full_refresh and _audited_as_is(audit, "listings")
        read = validate.columns_read("listings", "listing_id", only=validate.BLOCK, whole_table_only=judged)
        known = (schema.empty({c: schema.LISTINGS[c] for c in read}) if full_refresh
                 else store.read_table(data_dir, "listings", columns=read))
        new_listings, staged, new_rejects, quarantined, outcomes = _parse_checked(
            todo, data_dir, list(dict.fromkeys([*table_columns, "capture_id"])))
        with _discarded_on_error(staged):
            faults.point("parse:staged")
            added = new_listings.select(table_columns)
            table = validate.validate(pl.concat([known, added.select(read)]), "listings", "listing_id",
                                      data_dir.validation_docs, only=validate.BLOCK, added=added if judged else None)
        report = validate.Report("listings", outcomes + table.outcomes, table.docs_index)
        new_rejects = pl.concat([new_rejects, quarantined])
        committed = not report.blocking_failures and (todo.height > 0 or full_refresh or not recorded)
        if not committed:
            _discard(staged)
        else:  # (a commit that fails before its journal leaves the staged parts to `recover`)
            gave = pl.concat([new_listings.select("capture_id", kind=pl.lit("listings")),
                              new_rejects.select("capture_id", kind=pl.lit("rejects"))])
            counts = (todo.select("capture_id").join(gave, on="capture_id", how="left")
                      .group_by("capture_id", maintain_order=True)
                      .agg(listings=(pl.col("kind") == "listings").sum(), rejects=(pl.col("kind") == "rejects").sum()))
            parsed = pl.concat([*([] if recorded else [done]), schema.conform(counts, schema.PARSED)])
            new = {"listings": staged, "rejects": new_rejects, "parsed": parsed}
            store.write_tables(data_dir, new if full_refresh else {}, appended=None if full_refresh else new,
                               audit=_audit(report, quarantined=quarantined.height), label="parse")
        return Parsed(store.scan_table(data_dir, "listings"), store.scan_table(data_dir, "rejects"), todo.height,
                      captures.height, new_listings.height, new_rejects.height, quarantined.height, report, committed)


def _parse_checked(captures: pl.DataFrame, data_dir: DataDir, columns: list[str]) -> tuple[
        pl.DataFrame, list[store.Staged], pl.DataFrame, pl.DataFrame, list[validate.Outcome]]:
    """The captures parsed as the workers hand them back, and the rest done while they parse the
    next chunks: the row-level rules run on about ROW_BATCH listings at a time, here, and the rows
    that pass written as parts to commit, in a thread beside (Polars writes outside the GIL). At a
    million listings the rules took 4.3 s and the write 4.3 s after the parse, and the stage held
    every listing. The new listings' `columns`, their staged parts, the parse's rejects, the rows
    quarantined, and the rules' outcomes over all the listings."""
    empty_listings, empty_rejects = parse.to_frames([], [])
    narrow, rejects, quarantined, runs = [empty_listings.select(columns)], [empty_rejects], [empty_rejects], []
    batch: list[pl.DataFrame] = []
    validator = None

    def check() -> None:
        nonlocal validator
        validator = validator or validate.Validator("listings", "listing_id", only=validate.QUARANTINE)
        rows = pl.concat(batch)
        batch.clear()
        runs.append(validator.run(rows))
        passed, failed = validate.quarantine(rows, validate.Report("listings", runs[-1]))
        stage(passed)
        narrow.append(workers.copied(passed.select(columns)))
        quarantined.append(workers.copied(failed))

    with _staged_beside(data_dir, "listings") as (stage, staged):
        for listings, bad in parse.parse_chunks(captures, data_dir.root):
            rejects.append(workers.copied(bad))
            if listings.height:
                batch.append(listings)
            if sum(frame.height for frame in batch) >= validate.ROW_BATCH:
                check()
        if batch:
            check()
    return pl.concat(narrow), staged, pl.concat(rejects), pl.concat(quarantined), validate.merged(runs)


@contextmanager
def _staged_beside(data_dir: DataDir, name: str) -> Iterator[tuple[Callable[[pl.DataFrame], None],
                                                                   list[store.Staged]]]:
    """A function that writes rows of the `PARTED` table `name` as a part to commit, in a thread
    beside the caller's work (Polars writes outside the GIL), and the list of the parts written,
    filled when the block ends; if the block fails, the parts written are removed."""
    writes: list[Future] = []
    staged: list[store.Staged] = []
    with ThreadPoolExecutor(1) as writer:
        try:
            yield (lambda frame: writes.append(writer.submit(store.stage_part, data_dir, name, frame))), staged
            staged.extend(write.result() for write in writes)
        except BaseException:
            _discard([write.result() for write in writes if not write.cancel() and write.exception() is None])
            raise


def _discard(staged: list[store.Staged]) -> None:
    """Remove parts staged for a commit that will not be made (else the next run's `recover` would)."""
    for part in staged:
        part.path.unlink(missing_ok=True)


@contextmanager
def _discarded_on_error(staged: list[store.Staged]) -> Iterator[None]:
    """The staged parts removed if the block fails (an audit that refuses the commit is the
    caller's to act on)."""
    try:
        yield
    except BaseException:
        _discard(staged)
        raise


def _parsed_so_far(data_dir: DataDir) -> tuple[pl.DataFrame, bool]:
    """The parse record, and whether it was committed: a data directory from before it counts the
    captures that gave anything, a record the next commit writes."""
    if "parsed" in store.read_ledger(data_dir) or store.location(data_dir, "parsed").exists():
        return store.read_table(data_dir, "parsed"), True
    ids = pl.concat([store.read_table(data_dir, name, columns=["capture_id"])["capture_id"]
                     for name in ("listings", "rejects")]).unique()
    return schema.conform(pl.DataFrame({"capture_id": ids}).with_columns(
        listings=pl.lit(None, pl.Int32), rejects=pl.lit(None, pl.Int32)), schema.PARSED), False


def _audit(report: validate.Report, **facts) -> dict:
    return {"suite": report.suite, "suite_sha256": validate.fingerprint(report.suite),
            "passed": not report.blocking_failures, "failed_expectations": sorted(o.rule for o in report.failed),
            **facts}


def _audited_as_is(audit: dict, suite: str) -> bool:
    """Whether an audit (of tables that have not changed since) passed, by the suite as it is now."""
    return (bool(audit.get("passed")) and audit.get("suite") == suite
            and audit.get("suite_sha256") == validate.fingerprint(suite))


@dataclass
class Resolved:
    # The tables as resolved, or (unchanged) as committed, lazily: read only for what is shown.
    papers: pl.DataFrame | pl.LazyFrame
    sightings: pl.DataFrame | pl.LazyFrame
    merges: pl.DataFrame | pl.LazyFrame
    aliases: pl.DataFrame | pl.LazyFrame
    listings: int
    report: validate.Report
    committed: bool
    unchanged: bool = False  # no listings since the last resolution: the tables as committed


RESOLVED_TABLES = ("papers", "sightings", "merges", "aliases", "resolver_state", "records")


def resolve(data_dir: DataDir, target: publish.Target, full_refresh: bool = False) -> Resolved:
    """Resolve the listings into papers (incrementally, from the previous resolution), check the
    papers suite on the result, and commit the resolution's tables together only if it passed.
    Resolving from scratch (a full refresh, or a data directory without the resolver's state) keeps
    the ids of the previous resolution (or, when its tables cannot be read, of the previous
    release), as a fresh data directory keeps the previous release's. The records signed before
    are kept; only the new ones are written, as a new part of `records`.

    The listings are scanned, not read whole: resolution reads their abstracts only where it needs
    them. The audit records the parts of `listings` the resolution was made from. When the listings
    are those parts and new ones after them (parse only adds parts), only the new parts are matched;
    of the earlier ones, only the rows of the papers the new listings reach are read. The state is
    read without the records' normalised abstracts: resolution reads the few it compares. When the
    listings are exactly those parts, and the audit passed by the papers suite as it is now, there
    is nothing to resolve: the tables are only checked to be the files committed, and returned as
    scans (at a million listings, 2 to 3 s instead of 14 to 21)."""
    with store.exclusive(data_dir, "resolve"):
        ledger = store.read_ledger(data_dir)
        parts, papers_parts = store.parts(data_dir, "listings"), store.parts(data_dir, "papers")
        audit = store.last_audit(ledger, "papers")
        if (not full_refresh and {"records", "resolver_state"} <= ledger.keys()
                and audit.get("listings") == [part["sha256"] for part in parts] and _audited_as_is(audit, "papers")):
            # Resolved from these very listings, and audited by the suite as it is: as committed.
            names = ("papers", "sightings", "merges", "aliases")
            store.check(data_dir, *names)
            return Resolved(*(store.scan_table(data_dir, name) for name in names),
                            listings=sum(part["rows"] for part in parts),
                            report=validate.Report("papers", validate.as_audited("papers", audit)),
                            committed=False, unchanged=True)
        state, signed, abstracts = (None, None, None) if full_refresh else _state(data_dir)
        consumed = audit.get("listings") if state is not None else None
        earlier = None
        if consumed is not None and [part["sha256"] for part in parts[:len(consumed)]] == consumed:
            earlier = store.scan_parts(data_dir, "listings", parts[:len(consumed)])
            listings = store.scan_parts(data_dir, "listings", parts[len(consumed):])
        else:
            listings = store.scan_parts(data_dir, "listings", parts)
        previous_ids, aliases, previous, merges = None, None, None, None
        if state is None:
            try:
                merges, aliases = store.read_table(data_dir, "merges"), store.read_table(data_dir, "aliases")
                previous_ids = merges.select("listing_id", "paper_id") if merges.height else None
            except store.StoreError:
                aliases = None
            merges = None
            latest = publish.latest(target).tables if previous_ids is None else None
            if latest is not None:
                previous_ids, aliases = latest["sightings"].select("listing_id", "paper_id"), latest["aliases"]
        else:  # the papers no new listing reaches keep their rows (read once the grouping is done)
            merges, aliases = store.read_table(data_dir, "merges"), store.read_table(data_dir, "aliases")
            previous = {"papers": store.scan_each(data_dir, "papers", papers_parts),
                        "sightings": store.scan_parts(data_dir, "sightings", store.parts(data_dir, "sightings"))}
        resolution, staged = _resolve_staging_records(data_dir, signed, listings, state, merges, previous_ids,
                                                      aliases, previous, earlier, abstracts)
        with _discarded_on_error(staged):
            faults.point("resolve:staged")
            # The rows of the parts kept passed this suite, as it is now, when they were written (a
            # changed suite judges every row again): of them, only what the rules over the whole
            # table read is read.
            judged = bool(resolution.kept_parts) and _audited_as_is(audit, "papers")
            read = validate.columns_read("papers", "paper_id", whole_table_only=judged)
            report = validate.validate(resolution.papers.lazy().select(read).collect(), "papers", "paper_id",
                                       data_dir.validation_docs, added=resolution.written if judged else None)
        committed = not report.blocking_failures
        if not committed:
            _discard(staged)
        else:  # (a commit that fails before its journal leaves the staged part to `recover`)
            out = {name: getattr(resolution, name) for name in ("sightings", "merges", "aliases")}
            out["resolver_state"] = resolution.state.select(list(schema.RESOLVER_STATE))
            # The parts of papers that hold none of the papers made again stay as they are; the
            # rest are written as new parts (at a million listings, writing them all took 2 s).
            kept = [papers_parts[i] for i in resolution.kept_parts]
            appended = {"papers": resolution.written}
            if signed is None:
                out["records"] = staged
            else:
                appended["records"] = staged
            store.write_tables(data_dir, out, label="resolve", appended=appended, kept={"papers": kept},
                               audit=_audit(report, listings=[part["sha256"] for part in parts]))
        # (once committed, the papers as stored: a commit may move a kept part's file, as it moves
        # a papers file from before parts into the folder)
        papers = store.scan_table(data_dir, "papers") if committed else resolution.papers
        return Resolved(papers, resolution.sightings, resolution.merges, resolution.aliases,
                        sum(part["rows"] for part in parts), report, committed)


def _resolve_staging_records(data_dir: DataDir, signed: pl.DataFrame | None, *args) -> tuple[
        dedup.Resolution, list[store.Staged]]:
    """`dedup.resolve(*args)`, the records it signs (but those `signed` before) written as a part
    to commit, in a thread beside, while it groups them and makes the papers (at a million
    listings, 2 s of writing beside the grouping; the stage's peak about 0.4 GiB lower, the
    abstract keys dropped once compared). A table written whole (`signed` None) gets its part even
    with no rows; an appended one gets none then."""
    def write(records: pl.DataFrame) -> None:
        if signed is not None:
            records = records.join(signed, on="record_id", how="anti")
        if records.height or signed is None:
            stage(records)

    with _staged_beside(data_dir, "records") as (stage, staged):
        resolution = dedup.resolve(*args, write_records=write)
    return resolution, staged


def _state(data_dir: DataDir) -> tuple[pl.DataFrame | None, pl.DataFrame | None, pl.LazyFrame | None]:
    """The resolver's state (`dedup.STATE` but the abstract keys: each record in use, with its
    paper, title key and signature), the ids of every record signed so far, and the records with
    their abstract keys, lazily (resolution reads the few it compares); (None, None, None) when
    there is no state to go on: never resolved, or resolved before records were kept apart (whose
    state the next resolution replaces)."""
    if not {"records", "resolver_state"} <= store.read_ledger(data_dir).keys():
        return None, None, None
    stored = store.scan_parts(data_dir, "records", store.parts(data_dir, "records"))
    records = stored.select(pl.exclude("abstract_key")).collect(engine="streaming")
    state = store.read_table(data_dir, "resolver_state").join(records, on="record_id", how="left")
    return (state if state.height else None), records.select("record_id"), stored


def catalog(data_dir: DataDir) -> tuple[Path, dict[str, int]]:
    """The DuckDB catalog over the tables, and each view's row count."""
    with store.exclusive(data_dir, "catalog"):
        path = store.write_catalog(data_dir)
        with store.connect_catalog(data_dir) as con:
            counts = {name: con.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in store.VIEW_TABLES}
        return path, counts


# What a release reads: each table and the suite that must have passed on its current contents.
RELEASE_INPUTS = {"papers": "papers", "sightings": "papers", "aliases": "papers", "captures": None}


@dataclass
class Release:
    current: publish.Latest  # the target's latest version before this release
    prepared: release.Prepared | None  # None: the data equal the latest version's
    published: publish.Published | None = None  # None for a dry run or no change
    finished: str | None = None  # a version an interrupted run committed and this one tagged
    plan: tuple[dict[str, bytes], list[str]] = ({}, [])  # uploads and deletes


def release_tables(data_dir: DataDir, target: publish.Target, now: dt.datetime, allow_removals: bool = False,
                   dry_run: bool = False) -> Release:
    """Publish the audited tables as the next version on `target`, if they changed. Refuses (with
    `store.NotAudited` or `release.ReleaseRefused`) tables without a passed audit and a version that
    would remove papers the previous one had, unless `allow_removals`. A dry run writes nothing.
    Tables that are the very files the latest version was made from (its manifest's `made_from`)
    are not read: they are only checked to be those files."""
    if dry_run:
        return _prepare(data_dir, target, now, allow_removals)
    with store.exclusive(data_dir, "release"):
        current = publish.latest(target)
        finished = publish.finish_interrupted(target, current)
        out = _prepare(data_dir, target, now, allow_removals, current)
        out.finished = finished
        if out.prepared is not None:
            out.published = publish.publish(target, out.prepared, current)
        return out


def _prepare(data_dir: DataDir, target: publish.Target, now: dt.datetime, allow_removals: bool,
             current: publish.Latest | None = None) -> Release:
    made_from = {name: files for name, files in store.audited_files(data_dir, RELEASE_INPUTS).items()
                 if name in release.PUBLISHED}
    current = current if current is not None else publish.latest(target)
    if current.manifest.get("made_from") == made_from:  # the very files the latest version was made from
        store.check(data_dir, *release.PUBLISHED)
        return Release(current, None)
    # (each checked as it is read, and put in its published order at once: the rows as stored are
    # not held beside their sorted copy)
    tables = {name: release.canonical(name, store.read_table(data_dir, name)) if name in release.PUBLISHED
              else store.read_table(data_dir, name) for name in RELEASE_INPUTS}
    prepared = publish.prepare(target, current, {name: tables[name] for name in release.PUBLISHED},
                               tables["captures"], now, allow_removals, made_from)
    plan = publish.plan(prepared, current.manifest) if prepared is not None else ({}, [])
    return Release(current, prepared, plan=plan)
