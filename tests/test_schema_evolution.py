"""A new column never breaks an existing data directory or release; a removed or retyped one is a
clear error naming the migration; skipped files are reported."""

import json
import os
import shutil

import dagster as dg
import polars as pl
import pytest

from assets.definitions import ALL_ASSETS
from assets.resources import DataDirResource, ReleaseTargetResource
from conftest import SAMPLE_FILES
from pipeline import schema, store
from pipeline.paths import DataDir
from pipeline.publish import LocalGitTarget


def run(data_dir, captures):
    return dg.materialize(ALL_ASSETS, resources={"datadir": DataDirResource(data_dir=str(data_dir)),
                                                 "release_target": ReleaseTargetResource()},
                          run_config={"ops": {"captures": {"config": {"captures_dir": str(captures)}}}},
                          raise_on_error=False)


@pytest.fixture
def older(tmp_path):
    """A data directory and release written by the code as it is, before the schema changes."""
    data, folder = tmp_path / "data", tmp_path / "captures"
    folder.mkdir()
    shutil.copy(SAMPLE_FILES[0], folder)
    assert run(data, folder).success
    shutil.copy(SAMPLE_FILES[1], folder)  # news for the next run
    return data, folder


def test_a_new_nullable_column_reads_older_tables_and_releases_with_nulls(older, monkeypatch):
    data, folder = older
    for table in (schema.LISTINGS, schema.PAPERS):
        monkeypatch.setitem(table, "reading_time_minutes", pl.Int32)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", schema.SCHEMA_VERSION + 1)
    repo = LocalGitTarget(data / "releases")
    tags = repo.tags()

    result = run(data, folder)
    assert result.success
    papers = store.read_table(DataDir.resolve(data), "papers")
    assert papers["reading_time_minutes"].null_count() == papers.height
    assert len(repo.tags()) == len(tags) + 1
    manifest = json.loads(repo.read("manifest.json", "main"))
    assert manifest["schema_version"] == schema.SCHEMA_VERSION
    shard = next(p for p in manifest["files"] if p.startswith("data/papers/"))
    assert "reading_time_minutes" in (data / "releases" / shard).read_bytes().decode("latin-1")
    written = max((data / "tables" / "papers").glob("*.parquet"))  # the part this run wrote
    assert pl.read_parquet_metadata(written)[schema.VERSION_KEY] == str(schema.SCHEMA_VERSION)


def test_a_retyped_column_is_a_clear_error_naming_the_migration(older, monkeypatch):
    data, folder = older
    monkeypatch.setitem(schema.LISTINGS, "upvotes", pl.String)
    result = run(data, folder)
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "listings/000001.parquet was written in another schema" in message
    assert "upvotes (Int32, now String)" in message and "papers run --full-refresh" in message


def test_skipped_files_are_reported_with_their_reason(tmp_path):
    data, folder = tmp_path / "data", tmp_path / "captures"
    folder.mkdir()
    shutil.copy(SAMPLE_FILES[0], folder)
    shutil.copy(SAMPLE_FILES[1], folder / ".hidden.txt")
    os.symlink(SAMPLE_FILES[2], folder / "link.txt")
    result = run(data, folder)
    assert result.success
    (captures,) = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "captures"]
    assert captures.materialization.metadata["skipped_files"].value == {
        ".hidden.txt": "hidden file", "link.txt": "symbolic link, not followed"}
