"""The suites as Dagster asset checks: broken input ends in rejects or a failed blocking check, and
never in a release."""

import datetime as dt
import json

import dagster as dg
import polars as pl

from assets.definitions import ALL_ASSETS
from assets.resources import DataDirResource, ReleaseTargetResource
from pipeline.publish import LocalGitTarget
from bench.render import api_item, block_page


def run(data_dir, captures_dir):
    result = dg.materialize(ALL_ASSETS, resources={"datadir": DataDirResource(data_dir=str(data_dir)), "release_target": ReleaseTargetResource()},
                            run_config={"ops": {"captures": {"config": {"captures_dir": str(captures_dir)}}}},
                            raise_on_error=False)
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    return result, checks


def test_bad_rows_are_quarantined_and_never_released(data_dir, captures_copy):
    good = api_item({"title": "A Good API Paper", "abstract": "Fine.", "arxiv_id": "2605.00001",
                     "published_on": dt.date(2026, 5, 1), "upvotes": 3})
    negative = api_item({"title": "Negative Upvotes Paper", "abstract": "Bad.", "arxiv_id": "2605.00002",
                         "published_on": dt.date(2026, 5, 1)})
    negative["paper"]["upvotes"] = -4
    future = api_item({"title": "Published After Its Capture", "abstract": "Time travel.", "arxiv_id": "2701.00003",
                       "published_on": dt.date.today() + dt.timedelta(days=40)})
    (captures_copy / "daily.json").write_text(json.dumps([good, negative, future]))  # captured now (file time)
    page = block_page([{"title": "An Honest Paper", "abstract": "Fine.", "author_count": 1,
                        "published_on": dt.date(2025, 3, 1)}], dt.date(2026, 6, 3))
    (captures_copy / "honest.txt").write_text(page)
    result, checks = run(data_dir, captures_copy)
    assert result.success
    check = checks["listings_contract"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    failed = check.metadata["failed_expectations"].value
    assert "expect_column_pair_values_a_to_be_greater_than_b(captured_at,published_on)" in failed
    assert checks["papers_contract"].passed

    rejects = pl.read_parquet(data_dir / "tables" / "rejects" / "*.parquet")
    by_rule = dict(rejects.select("rule", "excerpt").iter_rows())
    assert by_rule["bad_field"] is not None and "negative count" in rejects.filter(
        pl.col("rule") == "bad_field")["message"].item()
    quarantined = rejects.filter(pl.col("stage") == "validate")
    assert quarantined["excerpt"].to_list() == ["Published After Its Capture"]

    repo = data_dir / "releases"
    released = pl.read_parquet(repo / "data" / "papers" / "*.parquet")["title"].to_list()
    assert "A Good API Paper" in released and "An Honest Paper" in released
    assert "Negative Upvotes Paper" not in released and "Published After Its Capture" not in released


def test_a_scrape_that_returned_nothing_blocks_the_release(data_dir, tmp_path):
    folder = tmp_path / "empty_day"
    folder.mkdir()
    (folder / "2026-05-09.json").write_text("[]")
    result, checks = run(data_dir, folder)
    check = checks["listings_contract"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["blocking_failures"].value == ["expect_table_row_count_to_be_between"]
    assert (data_dir / "validation" / "docs" / "index.html").exists()
    assert LocalGitTarget(data_dir / "releases").tags() == {}
    ran = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    assert "release" not in ran
