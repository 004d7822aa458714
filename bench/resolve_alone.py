"""Resolution alone, in a fresh process, as the resolve asset runs it: N listings read from Parquet,
resolved; wall time and peak resident memory of that process; then one new capture resolved against
that store with the saved state (the incremental cost). Adds `resolve_alone` to the results.

    python -m bench.resolve_alone [--listings 1000000] [--out bench/results.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, re, sys, time
from pathlib import Path
import polars as pl
from pipeline import dedup
listings = pl.read_parquet(sys.argv[1])
start = time.perf_counter()
resolution = dedup.resolve(listings)
seconds = time.perf_counter() - start
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)) // 1024
# One new capture (100 listings) against the store, with the state of the full resolution.
new = pl.read_parquet(sys.argv[2])
start = time.perf_counter()
dedup.resolve(pl.concat([listings, new]), resolution.state, resolution.merges, aliases=resolution.aliases,
              previous={"papers": resolution.papers, "sightings": resolution.sightings})
incremental = time.perf_counter() - start
print(json.dumps({"listings": listings.height, "papers": resolution.papers.height,
                  "seconds": round(seconds, 2), "peak_rss_mib": peak,
                  "one_new_capture_seconds": round(incremental, 2),
                  "one_new_capture_share": round(incremental / seconds, 3)}))
"""


def measure(n: int) -> dict:
    import polars as pl

    from bench import corpus
    from pipeline import schema

    with tempfile.TemporaryDirectory() as tmp:
        path, new = Path(tmp) / "listings.parquet", Path(tmp) / "new.parquet"
        schema.conform(corpus.listings_corpus(n), schema.LISTINGS).write_parquet(path)
        fresh = corpus.listings_corpus(100, seed=99).with_columns(
            capture_id=pl.lit("new") + pl.col("capture_id").str.slice(3),
            listing_id=pl.lit("new") + pl.col("listing_id").str.slice(3))
        schema.conform(fresh, schema.LISTINGS).write_parquet(new)
        done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(new)], check=True,
                              capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["targets"] = {"seconds": 60, "peak_rss_mib": 4096}
    result["met"] = result["seconds"] <= 60 and result["peak_rss_mib"] <= 4096
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listings", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args()
    result = measure(args.listings)
    print(json.dumps(result, indent=2))
    if args.out.exists():
        results = json.loads(args.out.read_text())
        results["resolve_alone"] = result
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
