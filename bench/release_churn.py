"""What a day's news costs a release: on a generated store, the share of a new version's bytes that
are new content-defined chunks (what the Hub's Xet storage uploads), and how the local release
repository grows over a month of daily releases.

    python -m bench.release_churn [--papers 100000] [--days 30]

Chunks are cut by FastCDC (the `fastcdc` package; 64 KiB on average, as Xet's chunks are) and named
by their sha256; a chunk of the new version's files is new when no file of the previous version has
it. The figures go into `bench/results.json` under `release_churn`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import tempfile
import time
from pathlib import Path

import polars as pl
from fastcdc import fastcdc

from bench.corpus import listings_corpus
from pipeline import dedup, publish, release, schema

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 1, 8, tzinfo=UTC)


def chunks(data: bytes) -> dict[str, int]:
    """sha256 -> size of each content-defined chunk of `data`."""
    return {hashlib.sha256(data[c.offset:c.offset + c.length]).hexdigest(): c.length
            for c in fastcdc(data, min_size=16 * 1024, avg_size=64 * 1024, max_size=256 * 1024)}


def data_files(prepared: release.Prepared) -> dict[str, bytes]:
    return {path: data for path, data in prepared.files.items() if path.endswith(".parquet")}


def new_chunk_share(old: release.Prepared, new: release.Prepared) -> dict:
    known = {h for data in data_files(old).values() for h in chunks(data)}
    total = changed_bytes = 0
    for data in data_files(new).values():
        for digest, size in chunks(data).items():
            total += size
            changed_bytes += size if digest not in known else 0
    return {"release_bytes": total, "new_chunk_bytes": changed_bytes, "share": round(changed_bytes / total, 4)}


def news(day: int, listings: pl.DataFrame, share: float = 0.01) -> pl.DataFrame:
    """A day of news: new papers (`share` of the store) and the papers listed in the last two weeks
    seen again with more upvotes, all captured that day."""
    when = NOW + dt.timedelta(days=day)
    fresh = listings_corpus(max(100, int(listings.height * share)), seed=1000 + day)
    # (the generator numbers its arXiv ids from the same start in every corpus: news has none)
    fresh = dated(fresh.with_columns(listing_id=pl.lit(f"d{day}-") + pl.col("listing_id"),
                                     capture_id=pl.lit(f"d{day}-") + pl.col("capture_id"), captured_at=pl.lit(when),
                                     arxiv_id=pl.lit(None, pl.String)))
    recent = (listings.filter(pl.col("captured_at") >= when - dt.timedelta(days=14))
              .unique("title_key", keep="last", maintain_order=True).head(2000))  # (the same each run)
    again = recent.with_columns(listing_id=pl.lit(f"r{day}-") + pl.col("listing_id"),
                                capture_id=pl.lit(f"r{day}-") + pl.col("capture_id"), captured_at=pl.lit(when),
                                upvotes=pl.col("upvotes").fill_null(0) + 1 + day % 3)
    return pl.concat([fresh.select(listings.columns), again.select(listings.columns)])


def dated(listings: pl.DataFrame) -> pl.DataFrame:
    """Papers published a few days before they are listed, as on Daily Papers."""
    return listings.with_columns(published_on=(pl.col("captured_at") - pl.duration(days=pl.int_range(pl.len()) % 4)).dt.date(),
                                 published_on_basis=pl.lit("api"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args()

    # a year of captures, each paper's first listing around its publication
    listings = listings_corpus(2 * args.papers)
    listings = dated(listings.with_columns(captured_at=NOW - pl.duration(
        days=365 - (pl.int_range(pl.len()) * 365 // pl.len()))))
    listings = schema.conform(listings, schema.LISTINGS)
    with tempfile.TemporaryDirectory() as tmp:
        target = publish.LocalGitTarget(Path(tmp) / "releases")
        res = dedup.resolve(listings)
        growth, previous, first_share, seconds = [], None, None, []
        for day in range(args.days + 1):
            if day:
                listings = pl.concat([listings, schema.conform(news(day, listings), schema.LISTINGS)])
                res = dedup.resolve(listings, res.state, res.merges, aliases=res.aliases,
                                    previous={"papers": res.papers, "sightings": res.sightings})
            start = time.perf_counter()
            current = publish.latest(target)
            prepared = publish.prepare(target, current, {t: getattr(res, t) for t in release.PUBLISHED},
                                       schema.empty(schema.CAPTURES), NOW + dt.timedelta(days=day))
            publish.publish(target, prepared, current)
            seconds.append(time.perf_counter() - start)
            if day == 1:
                first_share = new_chunk_share(previous, prepared)
            previous = prepared
            growth.append(sum(p.stat().st_size for p in (Path(tmp) / "releases" / ".git").rglob("*") if p.is_file()))
            print(f"day {day:2d}: {res.papers.height:,} papers, repository {growth[-1] / 2**20:.1f} MiB", flush=True)
    result = {
        "papers": args.papers,
        "one_day": first_share,
        "release_data_bytes": first_share["release_bytes"],
        "repository_bytes_first_release": growth[0],
        "repository_bytes_after_days": {args.days: growth[-1]},
        "repository_growth_per_day_bytes": round((growth[-1] - growth[0]) / args.days),
        "release_seconds_median": round(sorted(seconds)[len(seconds) // 2], 2),
        "release_seconds_max": round(max(seconds), 2),  # a day the local repository is repacked
    }
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["release_churn"] = result
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
