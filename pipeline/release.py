"""A release: the versioned snapshot of the tables, laid out the same for every target.

    README.md                 dataset card
    CHANGELOG.md              one section per version, newest first
    manifest.json             version, created_at, code version, row counts, files, captures
    data/papers/*.parquet     config "papers" (default)
    data/sightings/*.parquet  config "sightings"
    data/changes/*.parquet    config "changes"

A release is prepared only when the data differ from the previous version's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
from dataclasses import dataclass, field

import polars as pl

from pipeline import card, schema
from pipeline.version import code_version

VERSION_RE = re.compile(r"^v(\d{4})\.(\d{2})\.(\d{2})(?:\.(\d+))?$")
SHARD = "train-00000-of-00001.parquet"


@dataclass
class Prepared:
    version: str
    created_at: str
    files: dict[str, bytes]  # path in the release -> content
    changes: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def message(self) -> str:
        c = self.changes["change"].value_counts()
        n = {row["change"]: row["count"] for row in c.iter_rows(named=True)}
        return (f"Release {self.version}: {n.get('added', 0)} added, {n.get('changed', 0)} changed, "
                f"{n.get('removed', 0)} removed")


def version_key(tag: str) -> tuple[int, ...] | None:
    m = VERSION_RE.match(tag)
    return None if m is None else tuple(int(g or 0) for g in m.groups())


def next_version(existing: list[str], today: dt.date) -> str:
    """`vYYYY.MM.DD` for the first release of a day, then `.1`, `.2`, ...; always above every
    existing version, even if the clock went back."""
    keys = sorted(k for t in existing if (k := version_key(t)) is not None)
    candidate = (today.year, today.month, today.day, 0)
    if keys and candidate <= keys[-1]:
        y, m, d, n = keys[-1]
        candidate = (y, m, d, n + 1)
    y, m, d, n = candidate
    return f"v{y:04d}.{m:02d}.{d:02d}" + (f".{n}" if n else "")


def latest_version(existing: list[str]) -> str | None:
    versions = [t for t in existing if version_key(t) is not None]
    return max(versions, key=version_key) if versions else None


def diff(old: pl.DataFrame | None, new: pl.DataFrame, aliases: pl.DataFrame | None = None) -> pl.DataFrame:
    """What `new` added, changed (and in which columns) and removed relative to `old`, by paper_id;
    a removed id that became an alias says which id it was merged into."""
    if old is None:
        old = schema.empty(schema.PAPERS)
    old = schema.conform(old, schema.PAPERS)
    compared = [c for c in schema.PAPERS if c != "paper_id"]
    added = new.join(old, on="paper_id", how="anti").select(
        "paper_id", change=pl.lit("added"), columns=pl.lit(None, pl.List(pl.String)), title="title")
    removed = old.join(new, on="paper_id", how="anti").select(
        "paper_id", change=pl.lit("removed"), columns=pl.lit(None, pl.List(pl.String)), title="title")
    both = new.join(old, on="paper_id", how="inner", suffix="_old")
    changed = both.select(
        "paper_id",
        change=pl.lit("changed"),
        columns=pl.concat_list(
            [pl.when(pl.col(c).ne_missing(pl.col(f"{c}_old"))).then(pl.lit(c)).otherwise(None)
             for c in compared]
        ).list.drop_nulls(),
        title="title",
    ).filter(pl.col("columns").list.len() > 0)
    aliases = schema.empty(schema.ALIASES) if aliases is None else aliases
    removed = removed.join(aliases.select(pl.col("alias_id").alias("paper_id"), pl.col("paper_id").alias("merged_into")),
                           on="paper_id", how="left")
    frames = [f.with_columns(merged_into=pl.lit(None, pl.String)) for f in (added, changed)] + [removed]
    return schema.conform(pl.concat(frames), schema.CHANGES).sort(["change", "paper_id"])


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", statistics=True)
    return buffer.getvalue()


PUBLISHED = ("papers", "sightings", "aliases")  # the tables a release carries besides its changes


def prepare(tables: dict[str, pl.DataFrame], captures: pl.DataFrame,
            previous: dict[str, pl.DataFrame] | None, existing_tags: list[str], old_changelog: str,
            now: dt.datetime, repo_id: str | None = None) -> Prepared | None:
    """The files of the next version (`tables`: papers, sightings, aliases), or None when the data
    equal the previous version's."""
    if previous is not None and all(tables[t].equals(previous[t]) for t in PUBLISHED):
        return None
    papers, sightings = tables["papers"], tables["sightings"]
    version = next_version(existing_tags, now.date())
    created_at = now.astimezone(dt.timezone.utc).isoformat(timespec="seconds")
    changes = diff(previous["papers"] if previous else None, papers, tables["aliases"])
    files = {f"{card.CONFIGS[t]}/{SHARD}": parquet_bytes(tables[t]) for t in PUBLISHED}
    files[f"{card.CONFIGS['changes']}/{SHARD}"] = parquet_bytes(changes)
    files["README.md"] = card.render(version, papers, sightings, captures.height, repo_id).encode()
    header = "# Changelog\n\n"
    body = old_changelog.removeprefix(header)
    files["CHANGELOG.md"] = (header + card.changelog_section(version, created_at, changes) + "\n" + body).encode()
    counts = {**{t: tables[t].height for t in PUBLISHED}, "changes": changes.height}
    manifest = {
        "version": version,
        "created_at": created_at,
        "code_version": code_version(),
        "row_counts": counts,
        "files": {path: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                  for path, data in sorted(files.items())},
        "captures": sorted(captures["capture_id"].to_list()),
    }
    files["manifest.json"] = (json.dumps(manifest, indent=2) + "\n").encode()
    return Prepared(version, created_at, files, changes, counts)
