"""Validate tables against the Great Expectations suites in `expectations/` (the data contract).

Each expectation in a suite says in its `meta.on_failure` what a failure means:

- `quarantine`: a row-level rule; every failing row leaves the table for `rejects`
  (stage `validate`, the expectation as the rule);
- `block`: a table-level rule (unique ids, a table that is not empty, ...); a failure fails the
  blocking asset check and no release is made.

Great Expectations is imported here only, when a table is validated: it costs seconds to import.
GX validates pandas frames: dates and times are handed to it as naive UTC datetimes (GX reads a bound
such as "1990-01-01" as a datetime), and list columns, which no expectation reads, are left out.
The rules that read the same columns run together, on a frame of those columns only; the row-level
ones on ROW_BATCH rows at a time (their outcomes added up), so memory holds a small pandas copy. A
date is a local date (pages show dates in their reader's time zone), so it is handed over as its
first instant anywhere: 00:00 at UTC+14, 14 hours before its UTC midnight; "captured_at >=
published_on" then holds for a page saved just after midnight east of UTC.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pipeline import schema

SUITES_DIR = Path(__file__).resolve().parent.parent / "expectations"
QUARANTINE, BLOCK = "quarantine", "block"
SAMPLE_ROWS = 5
ROW_BATCH = 250_000  # rows a row-level rule is handed at a time
_NANOSECOND_RANGE = (dt.datetime(1678, 1, 1), dt.datetime(2261, 12, 31))


@dataclass
class Outcome:
    rule: str  # e.g. expect_column_values_to_be_between(upvotes)
    columns: list[str]
    success: bool
    on_failure: str
    unexpected_count: int | None = None
    observed_value: object = None
    bad_ids: list[str] = field(default_factory=list)
    sample: list[dict] = field(default_factory=list)
    error: str | None = None  # the expectation could not be evaluated


@dataclass
class Report:
    suite: str
    outcomes: list[Outcome]
    docs_index: Path | None = None

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success]

    @property
    def blocking_failures(self) -> list[Outcome]:
        return [o for o in self.failed if o.on_failure == BLOCK]

    @property
    def success(self) -> bool:
        return not self.failed

    def summary(self) -> dict:
        return {o.rule: o.error or (o.unexpected_count if o.unexpected_count is not None else o.observed_value)
                for o in self.failed}


def prefetch() -> None:
    """Import Great Expectations in the background (seconds of work for one core) while this
    process waits on others (the parse workers) or reads files (Polars, outside the GIL);
    `validate` then finds it imported."""
    threading.Thread(target=importlib.import_module, args=("great_expectations",), daemon=True).start()


def _suite_file(name: str, suites_dir: Path) -> Path:
    path = suites_dir / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite {path}")
    return path


def load_suite(name: str, suites_dir: Path = SUITES_DIR) -> dict:
    return json.loads(_suite_file(name, suites_dir).read_text())


def fingerprint(suite_name: str, suites_dir: Path | None = None) -> str:
    """The sha256 of a suite's file. An audit records it: a table that has not changed since an
    audit by the suite as it is now need not be audited again."""
    return hashlib.sha256(_suite_file(suite_name, suites_dir or SUITES_DIR).read_bytes()).hexdigest()


def as_audited(suite_name: str, audit: dict, only: str | None = None) -> list[Outcome]:
    """The outcome of each rule of a suite (those of policy `only`, if given) as an `audit` of the
    stages recorded it (the rules that failed, by name), for a table that has not changed since
    that audit by the same suite: what running the suite again would find, without its counts."""
    failed = set(audit.get("failed_expectations") or [])
    return [Outcome(rule=rule_name(e["type"], e["kwargs"]), columns=columns_of(e["kwargs"]),
                    success=rule_name(e["type"], e["kwargs"]) not in failed,
                    on_failure=(e.get("meta") or {}).get("on_failure", BLOCK))
            for e in _suite(suite_name, None, only)["expectations"]]


def columns_of(kwargs: dict) -> list[str]:
    if "column" in kwargs:
        return [kwargs["column"]]
    return [kwargs[k] for k in ("column_A", "column_B") if k in kwargs]


def rule_name(expectation_type: str, kwargs: dict) -> str:
    columns = columns_of(kwargs)
    return f"{expectation_type}({','.join(columns)})" if columns else expectation_type


def _for_gx(frame: pl.DataFrame, needed: set[str]):
    """The `needed` columns, as GX reads them: pandas, temporal columns as naive UTC datetimes.
    (Handing over only the columns a group of rules reads keeps the others out of the pandas copy.)"""
    columns = []
    for name, dtype in frame.schema.items():
        if name not in needed or isinstance(dtype, pl.List):
            continue
        if dtype == pl.Date:  # a (local) date begins, somewhere, 14 hours before its UTC midnight
            columns.append(pl.col(name).cast(pl.Datetime("us")) - pl.duration(hours=14))
        elif isinstance(dtype, pl.Datetime):
            columns.append(pl.col(name).dt.convert_time_zone("UTC").dt.replace_time_zone(None))
        elif dtype.is_integer():
            columns.append(pl.col(name).cast(pl.Int64))
        else:
            columns.append(pl.col(name))
    selected = frame.select(columns)
    # GX compares 64-bit numbers and nanosecond datetimes as whole columns, other types value by
    # value in Python; a time outside nanoseconds' range (years 1678 to 2261) keeps microseconds.
    fits = [name for name, dtype in selected.schema.items()
            if isinstance(dtype, pl.Datetime) and selected[name].drop_nulls().is_between(*_NANOSECOND_RANGE).all()]
    return selected.with_columns(pl.col(name).cast(pl.Datetime("ns")) for name in fits).to_pandas()


def _suite(name: str, suites_dir: Path | None, only: str | None) -> dict:
    spec = load_suite(name, suites_dir or SUITES_DIR)
    if only is None:
        return spec
    return {**spec, "expectations": [e for e in spec["expectations"]
                                     if (e.get("meta") or {}).get("on_failure", BLOCK) == only]}


def columns_read(suite_name: str, id_column: str, only: str | None = None, suites_dir: Path | None = None,
                 whole_table_only: bool = False) -> list[str]:
    """The columns a suite's expectations (those of policy `only`, if given; with `whole_table_only`,
    of those not `judged_by_row`) read, with the id."""
    spec = _suite(suite_name, suites_dir, only)
    if whole_table_only:
        spec = {**spec, "expectations": [e for e in spec["expectations"] if not judged_by_row(e)]}
    return _columns(spec, id_column)


def _columns(spec: dict, id_column: str) -> list[str]:
    return list(dict.fromkeys([id_column, *(c for e in spec["expectations"] for c in columns_of(e["kwargs"]))]))


def validate(frame: pl.DataFrame, suite_name: str, id_column: str, docs_dir: Path | None = None,
             suites_dir: Path | None = None, only: str | None = None, added: pl.DataFrame | None = None) -> Report:
    """Run the suite over the frame; with `docs_dir`, also write GX's Data Docs (static HTML) there.
    With `only` (QUARANTINE or BLOCK), only the expectations of that policy run: the row-level rules
    on the rows a commit adds, the table-level ones on the table as the commit would leave it. With
    `added` (the rows of `frame` that were not there when the suite, as it is now, last passed on
    it), the rules that judge each row alone (`judged_by_row`) run on those rows only, and those
    that judge the rows sharing a value (`judged_by_value`) on the rows that share one with them."""
    validator = Validator(suite_name, id_column, suites_dir, only)
    outcomes = validator.run(frame, added)
    return Report(suite_name, outcomes, validator.docs(docs_dir) if docs_dir is not None else None)


# The expectations whose outcome on a table is their outcomes on its rows, each judged alone.
ROW_BY_ROW = {
    "expect_column_values_to_not_be_null", "expect_column_values_to_be_null", "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex", "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set",
    "expect_column_value_lengths_to_be_between", "expect_column_value_lengths_to_equal",
    "expect_column_pair_values_a_to_be_greater_than_b", "expect_column_pair_values_to_be_equal",
}


def judged_by_row(expectation: dict) -> bool:
    """Whether a rule judges each row alone: then rows it passed before need not be judged again.
    Not so for a rule with `mostly` (the share of passing rows is the table's)."""
    return expectation["type"] in ROW_BY_ROW and expectation["kwargs"].get("mostly", 1) == 1


def judged_by_value(expectation: dict) -> bool:
    """Whether a rule judges the rows that share a value of one column (unique values): rows
    added to rows it passed can break it only with a value one of them has, so it need read only
    the rows with the added rows' values (the same outcome: the same rows break it). Not so with
    `mostly`."""
    return expectation["type"] == "expect_column_values_to_be_unique" and expectation["kwargs"].get("mostly", 1) == 1


def _judged(expectation: dict) -> str | None:
    """Which rows of a table with rows added a rule needs: "row" (the added ones), "value" (those
    sharing a value with one of them) or None (every row)."""
    return "row" if judged_by_row(expectation) else "value" if judged_by_value(expectation) else None


class Validator:
    """A suite's rules (those of policy `only`, if given) made ready once, then run over one frame
    after another: the row-level rules over the rows a parse adds, a batch at a time, while the
    parse goes on."""

    def __init__(self, suite_name: str, id_column: str, suites_dir: Path | None = None, only: str | None = None):
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.execution_engine import pandas_execution_engine

        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        self.id_column, self.spec = id_column, _suite(suite_name, suites_dir, only)
        # GX fingerprints each frame it is handed (a hash of every value, for the batch's metadata
        # only) unless the frame is larger than this; the fingerprint is never used here.
        pandas_execution_engine.HASH_THRESHOLD = 0
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        # GX filters the whole frame it is given for each expectation (its rows with the column not
        # null): handed every column, it would copy the abstracts once per rule. Each group of
        # rules that read the same columns gets a frame of those columns only, converted when its
        # turn comes.
        groups: dict[tuple[tuple[str, ...], bool, str | None], list[dict]] = {}
        for expectation in self.spec["expectations"]:
            row_level = (expectation.get("meta") or {}).get("on_failure", BLOCK) == QUARANTINE
            key = (tuple(columns_of(expectation["kwargs"])), row_level, _judged(expectation))
            groups.setdefault(key, []).append(expectation)
        # One batch definition serves every group: each run is handed its own frame (and every
        # asset added would write the context's whole configuration out again).
        batch = (self.context.data_sources.add_pandas("frames").add_dataframe_asset(suite_name)
                 .add_batch_definition_whole_dataframe("whole"))
        self.groups = []  # (columns handed over, row-level, rows judged (`_judged`), validation definition)
        for (columns, row_level, judged), expectations in groups.items():
            name = (f"{self.spec['name']}: {', '.join(columns) or 'table'}{' (rows)' if row_level else ''}"
                    f"{' (each row)' if judged == 'row' and not row_level else ''}"
                    f"{' (by value)' if judged == 'value' else ''}")
            suite = self.context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations,
                                                                meta=self.spec.get("meta", {})))
            definition = self.context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch,
                                                                                         suite=suite))
            self.groups.append((list(dict.fromkeys([id_column, *columns])), row_level, judged, definition))

    def run(self, frame: pl.DataFrame, added: pl.DataFrame | None = None) -> list[Outcome]:
        """Each rule's outcome on `frame`, in the suite's order; with `added` (rows of `frame`), the
        rules judged by row run on those rows of it only (at a million listings, a day's papers
        audit read 5,000 papers for them instead of 505,000), and those judged by value on the rows
        that share a value with one of them (a day's unique listing ids: 0.75 s of GX over a million
        ids)."""
        found: dict[str, list[Outcome]] = {}  # expectation id -> its outcome on each slice
        for needed, row_level, judged, definition in self.groups:
            rows = frame
            if added is not None and judged == "row":
                rows = added
            elif added is not None and judged == "value":  # (the rule's one column, last of `needed`)
                rows = frame.filter(pl.col(needed[-1]).is_in(added[needed[-1]].drop_nulls().implode()))
            # A row-level rule judges each row alone: it is handed the rows a slice at a time, so
            # that the pandas copy of a long text column stays small (at a million listings, the
            # row-level rules' copy took 2 GB more memory at once, 0.9 GB in slices, in the same
            # time).
            step = ROW_BATCH if row_level else max(rows.height, 1)
            for start in range(0, max(rows.height, 1), step):
                run = definition.run(
                    batch_parameters={"dataframe": _for_gx(rows.select(needed).slice(start, step), set(needed))},
                    result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [self.id_column]})
                for result in run.results:  # (by the expectation's id: two rules may share a name)
                    found.setdefault(result.expectation_config.id, []).append(_outcome(result, self.id_column))
        outcomes = [_merged(parts) for parts in found.values()]
        order = {rule_name(e["type"], e["kwargs"]): i for i, e in enumerate(self.spec["expectations"])}
        outcomes.sort(key=lambda o: order.get(o.rule, len(order)))
        return outcomes

    def docs(self, docs_dir: Path) -> Path:
        """GX's Data Docs of the runs so far, written as static HTML in `docs_dir`; its index."""
        docs_dir.mkdir(parents=True, exist_ok=True)
        self.context.add_data_docs_site("papers_pipeline", {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        self.context.build_data_docs(site_names=["papers_pipeline"])
        return docs_dir / "index.html"


def merged(runs: list[list[Outcome]]) -> list[Outcome]:
    """The outcomes of a Validator's runs over several frames, as over the frames together (each
    run gives the same rules in the same order)."""
    return [_merged(list(parts)) for parts in zip(*runs)]


def _outcome(result, id_column: str) -> Outcome:
    config, details = result.expectation_config, result.result or {}
    index = details.get("unexpected_index_list") or []
    return Outcome(
        rule=rule_name(config.type, config.kwargs),
        columns=columns_of(config.kwargs),
        success=bool(result.success),
        on_failure=(config.meta or {}).get("on_failure", BLOCK),
        unexpected_count=details.get("unexpected_count"),
        observed_value=details.get("observed_value"),
        bad_ids=[str(row[id_column]) for row in index if isinstance(row, dict) and id_column in row],
        sample=[{k: str(v) for k, v in row.items()} for row in index[:SAMPLE_ROWS] if isinstance(row, dict)],
        error=_error(result.exception_info),
    )


def _merged(parts: list[Outcome]) -> Outcome:
    """One row-level rule's outcome over the slices it was run on, as over the whole frame."""
    if len(parts) == 1:
        return parts[0]
    counts = [p.unexpected_count for p in parts if p.unexpected_count is not None]
    errors = list(dict.fromkeys(p.error for p in parts if p.error))
    return Outcome(rule=parts[0].rule, columns=parts[0].columns, success=all(p.success for p in parts),
                   on_failure=parts[0].on_failure, unexpected_count=sum(counts) if counts else None,
                   observed_value=next((p.observed_value for p in parts if p.observed_value is not None), None),
                   bad_ids=[i for p in parts for i in p.bad_ids],
                   sample=[row for p in parts for row in p.sample][:SAMPLE_ROWS],
                   error="; ".join(errors) or None)


def _error(info) -> str | None:
    """The message of an exception GX caught while evaluating an expectation, if any."""
    found = [info] if isinstance(info, dict) and "raised_exception" in info else list((info or {}).values())
    messages = [i.get("exception_message") for i in found if isinstance(i, dict) and i.get("raised_exception")]
    return "; ".join(m for m in messages if m) or None


def quarantine(listings: pl.DataFrame, report: Report) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The listings that pass every row-level rule, and a `rejects` row for each that does not
    (its first failing rule, in suite order, with the values that broke it)."""
    first: dict[str, Outcome] = {}
    for outcome in report.failed:
        if outcome.on_failure == QUARANTINE:
            for listing_id in outcome.bad_ids:
                first.setdefault(listing_id, outcome)
    if not first:  # (filtering would copy every row, the abstracts with them)
        return listings, schema.empty(schema.REJECTS)
    failing = listings.filter(pl.col("listing_id").is_in(list(first)))
    rejects = []
    for row in failing.iter_rows(named=True):
        outcome = first[row["listing_id"]]
        values = ", ".join(f"{c}={row[c]!r}" for c in outcome.columns)
        rejects.append({"capture_id": row["capture_id"], "position": row["position"], "stage": "validate",
                        "rule": outcome.rule, "message": f"{values} breaks {outcome.rule}",
                        "excerpt": (row["title"] or "")[:300] or None})
    return listings.filter(~pl.col("listing_id").is_in(list(first))), schema.conform(rejects, schema.REJECTS)
