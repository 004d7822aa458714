"""A release: the versioned snapshot of the tables, laid out the same for every target.

    README.md                 dataset card
    papers_per_month.png      the card's chart
    CHANGELOG.md              one section per version, newest first
    manifest.json             version, created_at, code version, row counts, files, captures,
                              the stored files the tables were read from
    data/papers/train-00000-of-0000N.parquet     config "papers" (default)
    data/sightings/train-00000-of-0000N.parquet  config "sightings"
    data/changes/…, data/aliases/…               configs "changes" and "aliases" (left out while empty)

Few files, each up to a few hundred MB, as the Hub advises: a table is cut into shards of
SHARD_ROWS rows. Papers are in the order they were first seen (sightings in capture order), so a
day's news lands at the end of the last file: a shard whose rows are those of the previous
version's shard of that place is not encoded again, its file stays byte for byte the same and is
not uploaded. zstd; row groups of about 100 MB uncompressed, as the Hub's dataset viewer prefers.
The Parquet pages are cut at content-defined boundaries (pyarrow's `use_content_defined_chunking`),
so a file that does change shares most of its bytes with the previous one and the Hub's Xet
storage uploads only the chunks that changed. A release is prepared only when the data differ from
the previous version's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import polars as pl

from pipeline import card, schema
from pipeline.version import code_version

MAX_REMOVED_SHARE = 0.01  # of the previous version's papers a release may remove unasked


class ReleaseRefused(RuntimeError):
    """A release that would remove more of the published papers than an operator has allowed."""


VERSION_RE = re.compile(r"^v(\d{4})\.(\d{2})\.(\d{2})(?:\.(\d+))?$")
ORDER = {"papers": ["first_seen_at", "paper_id"], "sightings": ["captured_at", "listing_id"],
         "aliases": ["alias_id"], "changes": ["change", "paper_id"]}
ROW_GROUP_ROWS = 50_000  # ~100 MB uncompressed at ~2 KB a paper
# Rows a shard holds (the last one fewer): a few hundred MB of Parquet, about 500 MB in memory (a
# paper about 2 KB, a sighting, alias or change about 200 bytes). A fixed count, so that rows
# added at the end leave the earlier shards as they were.
SHARD_ROWS = {"papers": 250_000, "sightings": 2_500_000, "aliases": 2_500_000, "changes": 2_500_000}
CHART = "papers_per_month.png"


@dataclass
class Prepared:
    version: str
    created_at: str
    files: dict[str, bytes]  # path in the release -> content
    changes: pl.DataFrame
    changelog_section: str
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
    """The frame as a release's Parquet file. Handed to Arrow a row group at a time: Polars' copy
    of a whole shard for Arrow (its strings in Arrow's layout) was half a gigabyte more memory per
    shard at a million listings; the file's bytes are the same."""
    import pyarrow.parquet as pq

    metadata = {schema.VERSION_KEY.encode(): str(schema.SCHEMA_VERSION).encode()}
    arrow_schema = frame.head(0).to_arrow().schema
    arrow_schema = arrow_schema.with_metadata({**(arrow_schema.metadata or {}), **metadata})
    buffer = io.BytesIO()
    with pq.ParquetWriter(buffer, arrow_schema, compression="zstd", write_statistics=True,
                          use_content_defined_chunking=True) as writer:
        for start in range(0, frame.height, ROW_GROUP_ROWS):
            writer.write_table(frame.slice(start, ROW_GROUP_ROWS).to_arrow(), row_group_size=ROW_GROUP_ROWS)
    return buffer.getvalue()


PUBLISHED = ("papers", "sightings", "aliases")  # the tables a release carries besides its changes


def canonical(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    """A table in the schema and row order it is published in, in one chunk: sorted only when it is
    not in that order already (no two rows share their sort keys, so either way the rows end in one
    order). (A table read shard by shard is in several chunks; comparing it in them took a
    gigabyte more memory at a million listings.)"""
    frame = schema.conform(frame, schema.CHANGES if name == "changes" else schema.TABLES[name])
    return frame.rechunk() if _in_order(frame, ORDER[name]) else frame.sort(ORDER[name], nulls_last=True)


def _in_order(frame: pl.DataFrame, keys: list[str]) -> bool:
    """Whether each row sorts no later than the next by `keys` (ascending, nulls last)."""
    if frame.height < 2:
        return True
    fits = pl.lit(True)  # rows equal on every key
    for key in reversed(keys):
        this, following = pl.col(key), pl.col(key).shift(-1)
        after = (following > this).fill_null(False) | (this.is_not_null() & following.is_null())
        fits = after | (this.eq_missing(following) & fits)
    return frame.select(fits.head(frame.height - 1).all()).item()


def shards(name: str, frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Path in the release -> rows (of a canonical table), `train-{i:05d}-of-{n:05d}.parquet` as the
    Hub names shards, SHARD_ROWS[name] rows each; none for an empty table (a file of no rows is not
    loadable: its config is left out of the card while it is empty)."""
    size = SHARD_ROWS[name]
    n = -(-frame.height // size)
    return {f"{card.CONFIGS[name]}/train-{i:05d}-of-{n:05d}.parquet": frame.slice(i * size, size) for i in range(n)}


class Tables(Mapping):
    """The published tables of a version, from its manifest and `read(path) -> bytes`, each read
    the first time it is asked for: a release whose papers changed never reads the previous
    version's sightings (a million rows at 1M listings)."""

    def __init__(self, manifest: dict, read):
        self._manifest, self._read, self._tables = manifest, read, {}
        self._files: dict[str, list[tuple[str, int]] | None] = {}  # table -> its files and their rows, in order

    def __getitem__(self, name: str) -> pl.DataFrame:
        if name not in PUBLISHED:
            raise KeyError(name)
        if name not in self._tables:
            folder = card.CONFIGS[name] + "/"
            paths = [path for path in sorted(self._manifest.get("files", {})) if path.startswith(folder)]
            frames = [schema.upgrade(pl.read_parquet(io.BytesIO(self._read(path))), schema.TABLES[name],
                                     f"{path} of release {self._manifest.get('version')}") for path in paths]
            whole = pl.concat(frames) if frames else schema.empty(schema.TABLES[name])
            # Files whose rows, one file after another, are in the published order each hold a
            # slice of the canonical table, which a shard of the next version can be compared with.
            ordered = _in_order(whole, ORDER[name]) and self._manifest.get("schema_version") == schema.SCHEMA_VERSION
            self._files[name] = [(path, frame.height) for path, frame in zip(paths, frames)] if ordered else None
            self._tables[name] = canonical(name, whole)
        return self._tables[name]

    def encoded(self, name: str, index: int, rows: pl.DataFrame) -> bytes | None:
        """The bytes of this version's file `index` of table `name`, if that file holds exactly
        `rows` (a canonical shard), in the current schema; else None. Only a table read already
        (for the comparison, as the papers always are) is looked at: reading one to spare its
        encoding would cost about as much."""
        if name not in self._tables:
            return None
        files = self._files[name]
        if files is None or index >= len(files) or files[index][1] != rows.height:
            return None
        kept = self._tables[name].slice(sum(height for _, height in files[:index]), rows.height)
        # (the sort keys compared first: a shard that differs usually differs there, at once)
        same = kept.select(ORDER[name]).equals(rows.select(ORDER[name])) and kept.equals(rows)
        return self._read(files[index][0]) if same else None

    def forget(self) -> None:
        """Let go of the tables read so far (read again if asked for)."""
        self._tables.clear()

    def __iter__(self):
        return iter(PUBLISHED)

    def __len__(self) -> int:
        return len(PUBLISHED)


def removals(changes: pl.DataFrame, previous_papers: int, latest: str | None, allow: bool) -> str | None:
    """The changelog's note on removals the operator allowed; raises ReleaseRefused for a version
    that removes more than MAX_REMOVED_SHARE of the previous version's papers (papers that became
    aliases of papers still there are merged, not removed) unless `allow`."""
    gone = changes.filter((pl.col("change") == "removed") & pl.col("merged_into").is_null()).height
    if not gone or gone <= MAX_REMOVED_SHARE * previous_papers:
        return None
    what = f"{gone:,} of the {previous_papers:,} papers of {latest}"
    if not allow:
        raise ReleaseRefused(f"this release would remove {what}: refused; if that is intended, publish with "
                             "`papers publish --allow-removals` (or the release's `allow_removals` config)")
    return f"The operator allowed this version to remove {what}."


def prepare(tables: dict[str, pl.DataFrame], captures: pl.DataFrame,
            previous: Mapping[str, pl.DataFrame] | None, existing_tags: list[str], old_changelog: str,
            now: dt.datetime, repo_id: str | None = None, allow_removals: bool = False,
            made_from: dict | None = None) -> Prepared | None:
    """The files of the next version (`tables`: papers, sightings, aliases), or None when the data
    equal the previous version's. Raises ReleaseRefused as `removals` says. `made_from` (table ->
    the sha256 of the stored files it was read from) goes into the manifest, so that the next
    release from the same files knows them unchanged without reading them."""
    tables = {name: canonical(name, tables[name]) for name in PUBLISHED}
    if previous is not None and all(tables[t].equals(canonical(t, previous[t])) for t in PUBLISHED):
        return None
    papers, sightings = tables["papers"], tables["sightings"]
    changes = diff(previous["papers"] if previous else None, papers, tables["aliases"])
    note = removals(changes, previous["papers"].height if previous else 0, latest_version(existing_tags),
                    allow_removals)
    version = next_version(existing_tags, now.date())
    created_at = now.astimezone(dt.timezone.utc).isoformat(timespec="seconds")
    files, parts = {}, {}
    for name in (*PUBLISHED, "changes"):
        for index, (path, part) in enumerate(shards(name, changes if name == "changes" else tables[name]).items()):
            kept = previous.encoded(name, index, part) if isinstance(previous, Tables) else None
            if kept is None:
                parts[path] = part
            else:
                files[path] = kept
    if isinstance(previous, Tables):  # compared: its memory is the encoding's (at 1M listings, 0.7 GB)
        previous.forget()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # Arrow encodes and compresses outside the GIL
        files.update(zip(parts, pool.map(parquet_bytes, parts.values())))
    configs = [name for name in card.CONFIGS if any(path.startswith(card.CONFIGS[name] + "/") for path in files)]
    files["README.md"] = card.render(version, papers, sightings, captures.height, configs, repo_id, CHART).encode()
    files[CHART] = card.chart(papers)
    header = "# Changelog\n\n"
    section = card.changelog_section(version, created_at, changes, note)
    files["CHANGELOG.md"] = (header + section + "\n" + old_changelog.removeprefix(header)).encode()
    counts = {**{t: tables[t].height for t in PUBLISHED}, "changes": changes.height}
    manifest = {
        "version": version,
        "created_at": created_at,
        "code_version": code_version(),
        "schema_version": schema.SCHEMA_VERSION,
        "row_counts": counts,
        "files": {path: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                  for path, data in sorted(files.items())},
        "captures": sorted(captures["capture_id"].to_list()),
        **({"made_from": made_from} if made_from is not None else {}),
    }
    files["manifest.json"] = (json.dumps(manifest, indent=2) + "\n").encode()
    return Prepared(version, created_at, files, changes, section, counts)
