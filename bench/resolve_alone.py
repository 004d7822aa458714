"""Resolution alone, in a fresh process, as the resolve asset runs it: N listings read from Parquet,
resolved; wall time and peak resident memory of that process. Adds `resolve_alone` to the results.

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
print(json.dumps({"listings": listings.height, "papers": resolution.papers.height,
                  "seconds": round(seconds, 2), "peak_rss_mib": peak}))
"""


def measure(n: int) -> dict:
    from bench import corpus
    from pipeline import schema

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "listings.parquet"
        schema.conform(corpus.listings_corpus(n), schema.LISTINGS).write_parquet(path)
        done = subprocess.run([sys.executable, "-c", CHILD, str(path)], check=True, capture_output=True, text=True)
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
