"""The contract between stages: every table's columns and types, in one place.

Each stage builds its frames with `empty(...)`/`conform(...)` from here, so a column that one stage
renames or retypes fails loudly at the boundary instead of silently downstream.
"""

from __future__ import annotations

import polars as pl

UTC_TS = pl.Datetime("us", "UTC")

# Raised with every change to the tables' columns; kept in each Parquet file's metadata and in each
# release's manifest. Adding a nullable column is free: tables written before it read with nulls.
SCHEMA_VERSION = 2
VERSION_KEY = "papers_pipeline.schema_version"
MIGRATION = "rebuild the tables in the current schema with `papers run --full-refresh`"

SOURCES = ("hf_daily_api", "hf_search_api", "hf_paper_api", "hf_html", "text_capture")

# How a capture's time is known, most to least trustworthy.
CAPTURED_AT_BASES = ("fetched", "import", "file_mtime+page_day", "page_day+printed_years", "file_mtime")
# How a listing's publication date is known.
PUBLISHED_ON_BASES = ("api", "explicit", "year_inferred")

CAPTURES = {
    "capture_id": pl.String,  # sha256 of the bytes
    "source": pl.String,
    "format": pl.String,  # parser chosen from the content; "unknown" when none fits
    "origin": pl.String,  # URL or file name
    "params": pl.String,  # JSON object: date, query, page, ...
    "captured_at": UTC_TS,
    "captured_at_basis": pl.String,
    "http_status": pl.Int32,
    "content_type": pl.String,
    "n_bytes": pl.Int64,
    "raw_path": pl.String,  # relative to the data directory
}

LISTINGS = {
    "listing_id": pl.String,
    "capture_id": pl.String,
    "position": pl.Int32,
    "title": pl.String,
    "abstract": pl.String,
    "authors": pl.List(pl.String),
    "author_count": pl.Int32,
    "organization": pl.String,
    "organization_name": pl.String,
    "published_on": pl.Date,
    "published_on_basis": pl.String,
    "upvotes": pl.Int32,
    "comments": pl.Int32,
    "arxiv_id": pl.String,  # canonical: no version, no prefix (`2401.00001`, `math/0309136`)
    "arxiv_version": pl.Int32,  # the version the page named (`v2`), if it named one
    "github_repo": pl.String,
    "project_page": pl.String,
    "ai_keywords": pl.List(pl.String),
    "daily_date": pl.Date,  # the Daily Papers day the entry was listed on; null for search pages
    "ai_summary": pl.String,
    "github_stars": pl.Int32,
    "captured_at": UTC_TS,
    "source": pl.String,
    "title_key": pl.String,
}

REJECTS = {
    "capture_id": pl.String,
    "position": pl.Int32,  # null when the whole capture is rejected
    "stage": pl.String,  # parse | validate
    "rule": pl.String,
    "message": pl.String,
    "excerpt": pl.String,
}

PARSED = {  # every capture parsed, and what it gave: a page with no entries is parsed, with zero
    "capture_id": pl.String,
    "listings": pl.Int32,
    "rejects": pl.Int32,
}

PAPERS = {
    "paper_id": pl.String,
    "arxiv_id": pl.String,
    "title": pl.String,
    "abstract": pl.String,
    "authors": pl.List(pl.String),
    "author_count": pl.Int32,
    "organization": pl.String,
    "organization_name": pl.String,
    "published_on": pl.Date,
    "upvotes": pl.Int32,
    "comments": pl.Int32,
    "github_repo": pl.String,
    "project_page": pl.String,
    "ai_keywords": pl.List(pl.String),
    "daily_date": pl.Date,
    "ai_summary": pl.String,
    "github_stars": pl.Int32,
    "first_seen_at": UTC_TS,
    "last_seen_at": UTC_TS,
    "n_sightings": pl.Int32,
    "sources": pl.List(pl.String),
}

SIGHTINGS = {
    "paper_id": pl.String,
    "listing_id": pl.String,
    "capture_id": pl.String,
    "captured_at": UTC_TS,
    "source": pl.String,
    "position": pl.Int32,
    "upvotes": pl.Int32,
}

MERGES = {  # how each listing was matched to its paper
    "listing_id": pl.String,
    "paper_id": pl.String,
    "record_id": pl.String,  # listings agreeing on arXiv id, title key and abstract key share one
    "rule": pl.String,  # first | exact | arxiv_id | title_key | near_duplicate | title_only
    "score": pl.Float32,  # 1 for exact rules, the MinHash Jaccard estimate otherwise
    "listing_hash": pl.UInt64,  # of the whole listing row: a re-parsed listing that changed is noticed
}

ALIASES = {  # ids that turned out to name the same paper as another
    "alias_id": pl.String,
    "paper_id": pl.String,  # the surviving id
}

RECORDS = {  # every record resolution has signed: its keys and signature, which its id fixes for good
    "record_id": pl.String,
    "arxiv_id": pl.String,
    "title_key": pl.String,
    "abstract_key": pl.String,
    "signature": pl.Binary,  # MinHash signature, uint32 little-endian
}

RESOLVER_STATE = {  # what resolution keeps between runs: every record in use, its paper and how it joined
    "record_id": pl.String,
    "paper_id": pl.String,
    "rule": pl.String,
    "score": pl.Float32,
}

CHANGES = {
    "paper_id": pl.String,
    "change": pl.String,  # added | changed | removed
    "columns": pl.List(pl.String),  # for "changed": which columns differ
    "title": pl.String,
    "merged_into": pl.String,  # for "removed": the id it became an alias of, if it did
}

TABLES = {
    "captures": CAPTURES,
    "listings": LISTINGS,
    "rejects": REJECTS,
    "parsed": PARSED,
    "papers": PAPERS,
    "sightings": SIGHTINGS,
    "merges": MERGES,
    "aliases": ALIASES,
    "resolver_state": RESOLVER_STATE,
    "records": RECORDS,
}

# What each column of the published tables means: the dataset card's column table is made from it.
DESCRIPTIONS = {
    "paper_id": "Stable id of the paper in this dataset; kept across releases",
    "arxiv_id": "arXiv identifier (string, e.g. `2503.02130`), when any sighting showed one",
    "title": "Title, white space collapsed, characters otherwise as shown on the page",
    "abstract": "Abstract, white space collapsed",
    "authors": "Author names, when the page listed them (text captures show only a count)",
    "author_count": "Number of authors",
    "organization": "Hub handle of the organization the paper was submitted under",
    "organization_name": "Display name of that organization",
    "published_on": "Publication date (arXiv date from the API, or the date shown on the page)",
    "upvotes": "Upvotes on Hugging Face as of the latest capture that showed them",
    "comments": "Number of comments on the paper's Hub page, as of the latest capture",
    "github_repo": "Code repository linked from the paper page",
    "project_page": "Project page linked from the paper page",
    "ai_keywords": "Keywords the Hub generated for the paper",
    "arxiv_version": "The arXiv version the page named (`2401.00001v2` gives 2), when it named one",
    "daily_date": "The day the paper was on Hugging Face's Daily Papers (its first such day), when known",
    "ai_summary": "The one-paragraph summary the Hub generated for the paper, as of the latest capture",
    "github_stars": "Stars of the paper's GitHub repository, as of the latest capture that showed them",
    "first_seen_at": "When the pipeline first saw the paper listed (UTC)",
    "last_seen_at": "When the pipeline last saw the paper listed (UTC)",
    "n_sightings": "How many listings of this paper were seen",
    "sources": "Kinds of pages the paper was seen on",
    "listing_id": "The listing (capture and position) of this sighting",
    "capture_id": "sha256 of the captured page",
    "captured_at": "When the page was captured (UTC)",
    "source": "Kind of page: hf_daily_api, hf_search_api, hf_paper_api, hf_html or text_capture",
    "position": "Position of the entry on its page, from 0",
    "change": "added, changed or removed since the previous version",
    "alias_id": "An id that named a paper before it turned out to be the same as another",
    "rule": "How the listing was matched to its paper",
    "score": "Similarity behind the match (1 for exact rules)",
    "record_id": "Listings that agree on arXiv id, normalized title and normalized abstract share a record",
    "columns": "For a changed paper, the columns whose values changed",
    "merged_into": "For a removed paper that turned out to be another, the id that survives",
}


class SchemaError(ValueError):
    """A stored table whose columns the current schema cannot read without a migration."""


def upgrade(frame: pl.DataFrame, schema: dict, where: str) -> pl.DataFrame:
    """A table written by an earlier version, in the current schema: a column added since is filled
    with nulls; a column the schema no longer has, or whose type changed, is a SchemaError naming
    the file (`where`) and the migration."""
    dropped = [c for c in frame.columns if c not in schema]
    retyped = [f"{c} ({frame.schema[c]}, now {t})" for c, t in schema.items()
               if c in frame.columns and frame.schema[c] != t and frame.schema[c] != pl.Null]
    if dropped or retyped:
        what = "; ".join(filter(None, [dropped and f"columns no longer in the schema: {', '.join(dropped)}",
                                       retyped and f"columns of another type: {', '.join(retyped)}"]))
        raise SchemaError(f"{where} was written in another schema ({what}): {MIGRATION}")
    missing = [pl.lit(None, t).alias(c) for c, t in schema.items() if c not in frame.columns]
    return conform(frame.with_columns(missing) if missing else frame, schema)


def empty(schema: dict) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def conform(rows: list[dict] | pl.DataFrame | pl.LazyFrame, schema: dict) -> pl.DataFrame | pl.LazyFrame:
    """Rows (dicts) or a frame (lazy or not: it stays so), cast to exactly the columns of `schema`,
    in its order."""
    if isinstance(rows, (pl.DataFrame, pl.LazyFrame)):
        missing = [c for c in schema if c not in rows.collect_schema().names()]
        if missing:
            raise ValueError(f"frame lacks columns {missing}")
        return rows.select([pl.col(c).cast(t) for c, t in schema.items()])
    return pl.DataFrame(rows, schema=schema)
