"""Parquet tables and the DuckDB catalog over them.

Every file is written under a temporary name in its own folder and renamed into place, so a reader
(or a crash) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from pipeline import schema
from pipeline.paths import DataDir

# captures last: its view counts the listings and rejects of each capture.
VIEW_TABLES = ("listings", "rejects", "papers", "sightings", "merges", "aliases", "captures")


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside `target`, renamed onto it when the block succeeds, removed if not."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(frame: pl.DataFrame, target: Path) -> Path:
    with atomic_path(target) as tmp:
        frame.write_parquet(tmp, compression="zstd", statistics=True)
    return target


def write_table(data_dir: DataDir, name: str, frame: pl.DataFrame) -> Path:
    return write_parquet(schema.conform(frame, schema.TABLES[name]), data_dir.table(name))


def read_table(data_dir: DataDir, name: str) -> pl.DataFrame:
    path = data_dir.table(name)
    if not path.exists():
        return schema.empty(schema.TABLES[name])
    return schema.conform(pl.read_parquet(path), schema.TABLES[name])


def write_catalog(data_dir: DataDir) -> Path:
    """A DuckDB file with one view per table over its Parquet file, swapped in atomically."""
    with atomic_path(data_dir.catalog) as tmp:
        tmp.unlink()  # DuckDB creates the file itself
        con = duckdb.connect(str(tmp))
        try:
            for name in VIEW_TABLES:
                path = str(data_dir.table(name)).replace("'", "''")
                if name == "captures":
                    # A capture's row says how many listings and rejects it gave.
                    con.execute(f"""
                        CREATE VIEW captures AS
                        SELECT c.*,
                               coalesce(l.n, 0)::INTEGER AS n_listings,
                               coalesce(r.n, 0)::INTEGER AS n_rejects
                        FROM read_parquet('{path}') c
                        LEFT JOIN (SELECT capture_id, count(*) AS n FROM listings GROUP BY ALL) l
                               USING (capture_id)
                        LEFT JOIN (SELECT capture_id, count(*) AS n FROM rejects GROUP BY ALL) r
                               USING (capture_id)""")
                else:
                    con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
            con.execute("CHECKPOINT")
        finally:
            con.close()
    return data_dir.catalog


def connect_catalog(data_dir: DataDir) -> duckdb.DuckDBPyConnection:
    """A read-only connection: analysts' SQL can read the tables but never change the catalog."""
    return duckdb.connect(str(data_dir.catalog), read_only=True)
