"""The Great Expectations suites in expectations/: the samples pass every expectation, and for every
expectation there is data that breaks it and is caught under that expectation's rule."""

import datetime as dt
import json

import polars as pl
import pytest

from pipeline import dedup, validate
from pipeline.parse import parse_captures
from pipeline.paths import DataDir
from pipeline.sources.folder import import_folder
from conftest import SAMPLES

SUITES = {name: validate.load_suite(name) for name in ("listings", "papers")}
ID_COLUMN = {"listings": "listing_id", "papers": "paper_id"}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    data_dir = DataDir.resolve(tmp_path_factory.mktemp("data"))
    captures = import_folder(data_dir, SAMPLES, set())
    listings, _ = parse_captures(captures, data_dir.root)
    papers = dedup.resolve(listings).papers
    return {"listings": listings, "papers": papers}


def test_the_samples_pass_every_expectation(tables, tmp_path):
    for name, frame in tables.items():
        report = validate.validate(frame, name, ID_COLUMN[name], tmp_path / "docs")
        assert report.success, report.summary()
        assert len(report.outcomes) == len(SUITES[name]["expectations"])
    assert (tmp_path / "docs" / "index.html").exists()  # Data Docs written


def _shifted(value, by):
    return value + dt.timedelta(days=by)


def break_it(frame: pl.DataFrame, expectation: dict) -> pl.DataFrame:
    """`frame` with its second row changed so that `expectation` fails for that row."""
    kind, kw = expectation["type"], expectation["kwargs"]
    row = frame.with_row_index("_i").filter(pl.col("_i") == 1).drop("_i")
    rest = frame.with_row_index("_i").filter(pl.col("_i") != 1).drop("_i")
    col = kw.get("column")
    if kind == "expect_table_row_count_to_be_between":
        return frame.clear()
    if kind == "expect_column_values_to_not_be_null":
        row = row.with_columns(pl.lit(None, frame.schema[col]).alias(col))
    elif kind == "expect_column_values_to_be_unique":
        other = frame[col].drop_nulls()[0] if frame[col].drop_nulls().len() else "2501.00001"
        row = row.with_columns(pl.lit(other, frame.schema[col]).alias(col))
        rest = rest.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(other)).otherwise(pl.col(col))
                                 .cast(frame.schema[col]).alias(col))
    elif kind == "expect_column_values_to_match_regex":
        row = row.with_columns(pl.lit("not/an-id!", frame.schema[col]).alias(col))
    elif kind == "expect_column_values_to_be_in_set":
        row = row.with_columns(pl.lit("bogus", frame.schema[col]).alias(col))
    elif kind == "expect_column_value_lengths_to_be_between":
        row = row.with_columns(pl.lit("x" * (kw["max_value"] + 1), frame.schema[col]).alias(col))
    elif kind == "expect_column_values_to_be_between":
        dtype = frame.schema[col]
        if dtype == pl.Date:
            value = dt.date.fromisoformat(kw["min_value"][:10]) - dt.timedelta(days=1)
        else:
            value = kw["max_value"] + 1 if "max_value" in kw else kw["min_value"] - 1
        row = row.with_columns(pl.lit(value, dtype).alias(col))
    elif kind == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = kw["column_A"], kw["column_B"]
        later = _shifted(row[a].item(), 30)
        row = row.with_columns(pl.lit(later.date() if frame.schema[b] == pl.Date else later, frame.schema[b]).alias(b))
    else:
        raise AssertionError(f"no test breaks {kind}: add one")
    return pl.concat([rest, row])


CASES = [(name, i) for name, suite in SUITES.items() for i in range(len(suite["expectations"]))]


@pytest.mark.parametrize("suite_name, index", CASES,
                         ids=[f"{n}-{validate.rule_name(SUITES[n]['expectations'][i]['type'], SUITES[n]['expectations'][i]['kwargs'])}"
                              for n, i in CASES])
def test_each_expectation_catches_what_breaks_it(tables, suite_name, index):
    expectation = SUITES[suite_name]["expectations"][index]
    rule = validate.rule_name(expectation["type"], expectation["kwargs"])
    broken = break_it(tables[suite_name], expectation)
    report = validate.validate(broken, suite_name, ID_COLUMN[suite_name])
    failed = {o.rule: o for o in report.failed}
    assert rule in failed, report.summary()
    assert failed[rule].error is None
    if expectation["meta"]["on_failure"] == validate.QUARANTINE:
        kept, rejects = validate.quarantine(broken, report)
        assert rule in rejects["rule"].to_list()
        assert set(rejects["stage"]) == {"validate"}
        assert kept.height + rejects.height == broken.height
        assert failed[rule].sample  # a sample of the bad rows for the check's metadata
    else:
        assert failed[rule] in report.blocking_failures


def test_suites_are_files_with_a_policy_for_every_expectation():
    for suite in SUITES.values():
        for expectation in suite["expectations"]:
            assert expectation["meta"]["on_failure"] in (validate.QUARANTINE, validate.BLOCK)
        json.dumps(suite)


def test_times_beyond_nanoseconds_range_are_judged_like_any_other(tables):
    """GX compares nanosecond datetimes as columns; a date outside their range (years 1678 to 2261)
    is handed over as it is, and the rules still catch it or let it pass."""
    listings = tables["listings"].filter(pl.col("published_on").is_not_null()).head(3)
    ids = listings["listing_id"].to_list()
    dates = [dt.date(1066, 10, 14), dt.date(9000, 1, 1), dt.date(2020, 5, 1)]
    broken = listings.with_columns(published_on=pl.Series(dates, dtype=pl.Date),
                                   captured_at=pl.lit(dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)))
    report = validate.validate(broken, "listings", "listing_id", only=validate.QUARANTINE)
    failed = {o.rule: o.bad_ids for o in report.failed}
    assert failed == {"expect_column_values_to_be_between(published_on)": [ids[0]],
                      "expect_column_pair_values_a_to_be_greater_than_b(captured_at,published_on)": [ids[1]]}


def test_row_level_rules_are_handed_the_rows_a_slice_at_a_time_and_miss_none(tables, monkeypatch):
    """Bad rows in different slices are all found, counted and named, as over the whole frame."""
    listings = tables["listings"].filter(pl.col("upvotes").is_not_null()).head(8)
    ids = listings["listing_id"].to_list()
    broken = listings.with_columns(
        upvotes=pl.when(pl.col("listing_id").is_in([ids[1], ids[7]])).then(-1).otherwise("upvotes"),
        title=pl.when(pl.col("listing_id") == ids[5]).then(None).otherwise("title"))
    monkeypatch.setattr(validate, "ROW_BATCH", 3)
    report = validate.validate(broken, "listings", "listing_id", only=validate.QUARANTINE)
    failed = {o.rule: (o.unexpected_count, sorted(o.bad_ids)) for o in report.failed}
    assert failed == {"expect_column_values_to_be_between(upvotes)": (2, sorted([ids[1], ids[7]])),
                      "expect_column_values_to_not_be_null(title)": (1, [ids[5]])}
    rules = [validate.rule_name(e["type"], e["kwargs"]) for e in SUITES["listings"]["expectations"]
             if e["meta"]["on_failure"] == validate.QUARANTINE]
    assert [o.rule for o in report.outcomes] == rules


def test_rules_judged_by_row_read_only_the_rows_added_and_the_others_every_row(tables):
    """Rows a passed audit judged are not judged again by the rules that judge each row alone; a
    rule over the table (unique ids) still reads every row."""
    papers = tables["papers"]
    before = papers.head(papers.height - 2)
    before = before.with_columns(title=pl.when(pl.col("paper_id") == before["paper_id"][0]).then(None)
                                 .otherwise("title"))
    added = papers.tail(2).with_columns(paper_id=pl.Series([before["paper_id"][1], papers["paper_id"][-1]]),
                                        upvotes=pl.Series([1, -1], dtype=pl.Int32))
    frame = pl.concat([before, added])
    failed = {o.rule: sorted(o.bad_ids) for o in validate.validate(frame, "papers", "paper_id", added=added).failed}
    assert "expect_column_values_to_not_be_null(title)" not in failed
    assert failed["expect_column_values_to_be_between(upvotes)"] == [papers["paper_id"][-1]]
    assert failed["expect_column_values_to_be_unique(paper_id)"] == [before["paper_id"][1]] * 2
    everything = {o.rule for o in validate.validate(frame, "papers", "paper_id").failed}
    assert "expect_column_values_to_not_be_null(title)" in everything


def test_unique_values_read_only_the_rows_sharing_a_value_with_those_added(tables, monkeypatch):
    """Rows added to rows that passed can break a unique rule only with their own values: it reads
    the rows with those values, and finds the rows that break it in the whole table."""
    papers = tables["papers"]
    before = papers.head(papers.height - 3)
    before = before.with_columns(arxiv_id=pl.Series([f"2601.{i:05d}" for i in range(before.height)]))
    ids, arxiv = before["paper_id"], before["arxiv_id"]
    added = papers.tail(3).with_columns(paper_id=pl.Series([ids[1], "pfffffffffffffff1", "pfffffffffffffff2"]),
                                        arxiv_id=pl.Series([None, arxiv[0], "2601.99999"]))
    frame = pl.concat([before, added])
    handed = []
    for_gx = validate._for_gx
    monkeypatch.setattr(validate, "_for_gx", lambda rows, needed: handed.append((sorted(needed), rows.height))
                        or for_gx(rows, needed))
    report = validate.validate(frame, "papers", "paper_id", added=added)
    failed = {o.rule: (o.unexpected_count, sorted(o.bad_ids)) for o in report.failed}
    assert failed == {"expect_column_values_to_be_unique(paper_id)": (2, [ids[1], ids[1]]),
                      "expect_column_values_to_be_unique(arxiv_id)": (
                          2, sorted([ids[0], "pfffffffffffffff1"]))}
    # the added rows and, of the others, the one with an added id; the one with an added arXiv id
    assert (["paper_id"], 4) in handed and (["arxiv_id", "paper_id"], 3) in handed
    assert not [rows for needed, rows in handed if rows == frame.height and needed != ["paper_id"]]
    monkeypatch.setattr(validate, "_for_gx", for_gx)
    whole = validate.validate(frame, "papers", "paper_id")
    assert failed == {o.rule: (o.unexpected_count, sorted(o.bad_ids)) for o in whole.failed}
