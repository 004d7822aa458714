"""Resolve listings into papers: one row per paper, every listing kept as a sighting.

Listings are matched on their normalized title key (`pipeline.normalize`). Merge policy per column,
over the sightings of one paper ordered by capture time (ties by listing id):

- title, abstract, authors, author count, organization, arXiv id, links, keywords: the latest
  sighting that has a value;
- published_on: the most trustworthy basis (API date, then a date with an explicit year, then an
  inferred year), latest among equals;
- upvotes and comments: as of the latest capture that showed them;
- first_seen_at / last_seen_at: earliest and latest capture time; sources: every kind of page seen.
"""

from __future__ import annotations

import hashlib

import polars as pl

from pipeline import schema

_LATEST = ("title", "abstract", "authors", "author_count", "organization", "organization_name",
           "arxiv_id", "upvotes", "comments", "github_repo", "project_page", "ai_keywords")
_BASIS_RANK = {basis: rank for rank, basis in enumerate(reversed(schema.PUBLISHED_ON_BASES))}


def paper_id_expr(key: pl.Expr) -> pl.Expr:
    """A stable id from a match key: `p` and the first 16 hex digits of its sha256.

    (Polars' own `hash` is not stable across versions, so it cannot make ids that outlive a release.)"""
    return pl.lit("p") + key.map_batches(_sha16, return_dtype=pl.String)


def _sha16(keys: pl.Series) -> pl.Series:
    return pl.Series([hashlib.sha256(k.encode()).hexdigest()[:16] for k in keys], dtype=pl.String)


def resolve(listings: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`papers` and `sightings` from `listings`."""
    ordered = (
        listings.filter(pl.col("title_key").is_not_null() & (pl.col("title_key") != ""))
        .sort(["captured_at", "listing_id"])
        .with_columns(
            paper_id=paper_id_expr(pl.col("title_key")),
            basis_rank=pl.col("published_on_basis").replace_strict(_BASIS_RANK, default=-1),
        )
    )
    papers = ordered.group_by("paper_id").agg(
        *[pl.col(c).drop_nulls().last() for c in _LATEST],
        pl.col("published_on").sort_by("basis_rank", maintain_order=True).drop_nulls().last(),
        pl.col("captured_at").min().alias("first_seen_at"),
        pl.col("captured_at").max().alias("last_seen_at"),
        pl.len().cast(pl.Int32).alias("n_sightings"),
        pl.col("source").unique().sort().alias("sources"),
    )
    papers = schema.conform(papers, schema.PAPERS).sort(["published_on", "paper_id"], nulls_last=True)
    sightings = schema.conform(ordered, schema.SIGHTINGS).sort(["paper_id", "captured_at", "listing_id"])
    return papers, sightings
