"""Runs the stages of `papers_job` on a data directory, in its order, without Dagster: the process a
crash test kills at a named fault point (PAPERS_FAULT), started without Dagster's seconds of start-up.

    python tests/stage_runner.py DATA_DIR CAPTURES_DIR
"""

import datetime as dt
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import publish, stages  # noqa: E402
from pipeline.paths import DataDir  # noqa: E402


def main(data: str, captures: str) -> None:
    data_dir = DataDir.resolve(data)
    target = publish.target(data_dir.releases)
    stages.capture(data_dir, Path(captures))
    if stages.parse_new(data_dir).report.blocking_failures:
        sys.exit("blocked by the listings suite")
    if stages.resolve(data_dir, target).report.blocking_failures:
        sys.exit("blocked by the papers suite")
    stages.catalog(data_dir)
    stages.release_tables(data_dir, target, dt.datetime.now(dt.timezone.utc))


if __name__ == "__main__":
    main(*sys.argv[1:])
