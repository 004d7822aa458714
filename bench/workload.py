"""The million-listing workload as users meet it: `papers run` in its own process, beside the pandas
script, in the same session.

    python -m bench.workload [--listings 1000000] [--work DIR] [--keep]

1. `bench.gencorpus` writes the corpus (20,000 text pages of 50 entries at 1M, 500,000 papers each
   listed twice), unless `--work` already holds it;
2. `bench.baseline_pandas` on it;
3. `papers run --captures <corpus>` on a fresh data directory: wall time, user and system time and
   peak resident memory of the process (from `wait4`), and each Dagster step's time from the run's
   own records;
4. an incremental day: 1 % new listings (another seed) through `papers run --captures <day>` on top;
   its pages show the corpus's day, so they are captured at the same time as the corpus;
5. the next day: 1 % new listings again (a third seed), on pages of the day after, on top;
6. an empty day: `papers run --captures <an empty folder>` on top (a day the site showed nothing
   new, or a scheduled run with nothing to do).

Adds `workload` to `bench/results.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("results.json")


def measured(args: list[str], env: dict | None = None) -> dict:
    """Run `args`; its wall time, CPU time and peak resident memory (the kernel's own count)."""
    start = time.perf_counter()
    process = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{output[-3000:]}")
    return {"wall_s": round(wall, 2), "user_s": round(usage.ru_utime, 2), "system_s": round(usage.ru_stime, 2),
            "cpu_per_wall": round((usage.ru_utime + usage.ru_stime) / wall, 2),
            "peak_rss_gib": round(usage.ru_maxrss / 1024 / 1024, 2), "output_tail": output.strip().splitlines()[-12:]}


def step_seconds(dagster_home: Path) -> dict[str, float]:
    """Each step of the latest run, from the instance's own records."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    with dg.DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        return {s.step_key: round(s.end_time - s.start_time, 2) for s in instance.get_run_step_stats(run.run_id)}


def papers_run(captures: Path, data: Path) -> dict:
    env = {"PAPERS_DATA_DIR": str(data), "DAGSTER_HOME": str(data / "dagster")}
    out = measured([str(Path(sys.executable).with_name("papers")), "run", "--captures", str(captures)], env)
    out["steps_s"] = step_seconds(data / "dagster")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listings", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/papers-workload"))
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()
    corpus, day = args.work / f"corpus-{args.listings}", args.work / f"day-{args.listings}"
    next_day = args.work / f"next-day-{args.listings}"
    python = sys.executable
    for folder, n, seed, shown in ((corpus, args.listings, 7, "Nov 20"), (day, args.listings // 100, 8, "Nov 20"),
                                   (next_day, args.listings // 100, 9, "Nov 21")):
        if not folder.is_dir():
            subprocess.run([python, "-m", "bench.gencorpus", str(folder), str(n), "--seed", str(seed),
                            "--page-day", shown], check=True)
    size = sum(p.stat().st_size for p in corpus.iterdir())
    data = args.work / "data"
    shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(args.work / "out-pandas", ignore_errors=True)

    result = {"listings": args.listings, "pages": len(list(corpus.iterdir())), "corpus_bytes": size}
    print(f"corpus: {result['pages']} pages, {size / 1e9:.2f} GB", file=sys.stderr)
    result["pandas"] = measured([python, "-m", "bench.baseline_pandas", str(corpus), str(args.work / "out-pandas")])
    print(f"pandas: {result['pandas']['wall_s']} s, {result['pandas']['peak_rss_gib']} GiB", file=sys.stderr)
    result["papers_run"] = papers_run(corpus, data)
    print(f"papers run: {result['papers_run']['wall_s']} s, {result['papers_run']['peak_rss_gib']} GiB, "
          f"steps {result['papers_run']['steps_s']}", file=sys.stderr)
    result["incremental_day"] = papers_run(day, data)
    result["next_day"] = papers_run(next_day, data)
    empty = args.work / "empty-day"
    empty.mkdir(exist_ok=True)
    result["empty_day"] = papers_run(empty, data)
    for name in ("incremental_day", "next_day", "empty_day"):
        result[name]["share_of_full_run"] = round(result[name]["wall_s"] / result["papers_run"]["wall_s"], 3)
    result["papers_run_over_pandas"] = round(result["papers_run"]["wall_s"] / result["pandas"]["wall_s"], 2)
    if not args.keep:
        shutil.rmtree(data, ignore_errors=True)

    from bench.run import environment

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["workload"] = {"environment": environment(), **result}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
