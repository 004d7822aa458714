"""Work spread over worker processes gives what the same work gives in one: in order, nothing lost."""

import datetime as dt
import gc
import os
import tempfile
import time
from pathlib import Path

import polars as pl
import pytest

from bench.render import block_page
from pipeline import parse, stages, validate, workers
from pipeline.paths import DataDir
from pipeline.sources.folder import import_folder

CAPTURED = dt.date(2026, 3, 4)


def pids(chunk):
    return [(item, os.getpid()) for item in chunk]


def fails_on_seven(chunk):
    if 7 in chunk:
        raise ValueError("item 7 is bad")
    return list(chunk)


@pytest.fixture
def spread(monkeypatch):
    """Workers for any amount of work, three items a chunk."""
    if workers.cores() < 2:
        pytest.skip("one core: the work stays in the calling process")
    monkeypatch.setattr(workers, "MIN_ITEMS", 1)
    monkeypatch.setattr(workers, "CHUNK_ITEMS", 3)


def test_chunks_run_in_other_processes_and_come_back_in_order(spread):
    out = [row for chunk in workers.map_chunks(pids, list(range(20))) for row in chunk]
    assert [item for item, _ in out] == list(range(20))
    assert os.getpid() not in {pid for _, pid in out}


def test_an_error_in_a_worker_reaches_the_caller(spread):
    with pytest.raises(ValueError, match="item 7 is bad"):
        list(workers.map_chunks(fails_on_seven, list(range(100))))


def tagged(chunk: list[int]) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    frame = pl.DataFrame({"i": chunk, "text": [None if i % 6 == 0 else "Fréchet ∂ " * i for i in chunk],
                          "day": [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in chunk],
                          "tags": [[f"t{i}"] * (i % 3) for i in chunk]}, schema_overrides={"i": pl.Int64})
    return frame.with_columns(pid=pl.lit(os.getpid())), frame.head(1), len(chunk)


def test_frames_come_back_from_the_workers_whole_and_in_order(spread, tmp_path, monkeypatch):
    """The frames a worker returns, alone or in a tuple, cross as files; none is left behind."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    results = workers.map_chunks(tagged, list(range(20)))
    out = [next(results)]
    assert [p.name.startswith("papers-workers-") for p in tmp_path.iterdir()] == [True]
    out += list(results)
    whole = pl.concat([tagged_rows for tagged_rows, _, _ in out])
    assert whole["i"].to_list() == list(range(20))
    assert whole["text"].to_list() == [None if i % 6 == 0 else "Fréchet ∂ " * i for i in range(20)]
    assert whole["day"].to_list() == [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(20)]
    assert whole["tags"].to_list() == [[f"t{i}"] * (i % 3) for i in range(20)]
    assert os.getpid() not in set(whole["pid"])
    assert [first["i"].to_list() for _, first, _ in out] == [[i] for i in range(0, 20, 3)]
    assert [n for _, _, n in out] == [3] * 6 + [2]
    assert list(tmp_path.iterdir()) == []


def mapped_spool_files() -> set[str]:
    """The spooled files this process maps (each removed from its folder as it was read)."""
    lines = Path("/proc/self/maps").read_text().splitlines()
    return {line.split(maxsplit=5)[-1] for line in lines if "/papers-workers-" in line}


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the process's mappings from /proc")
def test_a_frame_from_a_worker_is_mapped_from_its_file_and_a_copy_holds_none_of_it(spread, tmp_path, monkeypatch):
    """Read without a copy (its pages are the page cache's); what is kept of it is copied, so that
    its file's pages go when the frame does."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    out = list(workers.map_chunks(tagged, list(range(20))))
    assert list(tmp_path.iterdir()) == []  # (every name removed, the pages mapped still)
    assert len(mapped_spool_files()) == 2 * len(out)  # each chunk's two frames, a file each
    kept = [workers.copied(frame.select("i", "text")) for frame, _, _ in out]
    del out
    gc.collect()
    assert mapped_spool_files() == set()
    whole = pl.concat(kept)
    assert whole["i"].to_list() == list(range(20))
    assert whole["text"].to_list() == [None if i % 6 == 0 else "Fréchet ∂ " * i for i in range(20)]


def slow_pids(chunk):
    time.sleep(0.3)  # (as if waiting on the disk)
    return pids(chunk)


def test_work_that_waits_gets_one_worker_more_than_the_cores(spread):
    out = [row for chunk in workers.map_chunks(slow_pids, list(range(60)), waits=True) for row in chunk]
    assert [item for item, _ in out] == list(range(60))
    assert len({pid for _, pid in out}) == workers.cores() + 1


def test_small_work_stays_here():
    out = [row for chunk in workers.map_chunks(pids, list(range(5))) for row in chunk]
    assert out == [(item, os.getpid()) for item in range(5)]


def test_import_and_parse_in_workers(tmp_path, spread):
    folder = tmp_path / "captures"
    folder.mkdir()
    pages = {}
    for n in range(10):
        entries = [{"title": f"Paper {n}.{k} on sparse attention", "abstract": f"We study case {n}.{k}.",
                    "published_on": CAPTURED - dt.timedelta(days=k), "upvotes": 10 * n + k, "author_count": k + 1}
                   for k in range(n + 1)]
        pages[f"page_{n:02d}.txt"] = entries
        (folder / f"page_{n:02d}.txt").write_text(block_page(entries, CAPTURED))
    (folder / "page_10_copy.txt").write_bytes((folder / "page_03.txt").read_bytes())  # the same capture again
    (folder / "page_11.txt").write_text("not a papers page")
    data_dir = DataDir(tmp_path / "data")

    captures = import_folder(data_dir, folder, set())

    assert captures["origin"].to_list() == [*pages, "page_11.txt"]
    assert captures["format"].to_list() == ["text_block"] * 10 + [parse.UNKNOWN]
    listings, rejects = parse.parse_captures(captures, data_dir.root)
    origin = dict(zip(captures["capture_id"], captures["origin"]))
    got = {}
    for row in listings.iter_rows(named=True):
        got.setdefault(origin[row["capture_id"]], []).append((row["title"], row["upvotes"], row["author_count"]))
    assert got == {name: [(e["title"], e["upvotes"], e["author_count"]) for e in entries]
                   for name, entries in pages.items()}
    assert [(origin[c], rule) for c, rule in rejects.select("capture_id", "rule").iter_rows()] == [
        ("page_11.txt", "unknown_format")]


def test_the_row_rules_check_batches_of_listings_while_the_workers_parse(tmp_path, monkeypatch):
    """The parse stage runs the row-level rules on about ROW_BATCH listings at a time, as the
    workers hand chunks back: the rows each rule quarantines, and its count, are those of one run
    over every listing."""
    monkeypatch.setattr(workers, "MIN_ITEMS", 1)
    monkeypatch.setattr(workers, "CHUNK_ITEMS", 2)
    monkeypatch.setattr(validate, "ROW_BATCH", 5)
    folder = tmp_path / "captures"
    folder.mkdir()
    good, late = [], []
    for n in range(12):
        entries = [{"title": f"Paper {n}.{k} on sparse attention", "abstract": f"We study case {n}.{k}.",
                    "published_on": CAPTURED - dt.timedelta(days=k), "upvotes": k, "author_count": 1}
                   for k in range(3)]
        if n % 4 == 1:  # published after the page was saved: the row-level rules quarantine it
            entries.append({"title": f"Paper {n} from the future", "abstract": "Not yet.",
                            "published_on": CAPTURED + dt.timedelta(days=400), "upvotes": 1, "author_count": 1})
            late.append(entries[-1]["title"])
        good += [e["title"] for e in entries if e["title"] not in late]
        (folder / f"page_{n:02d}.txt").write_text(block_page(entries, CAPTURED))
    data_dir = DataDir(tmp_path / "data")
    stages.capture(data_dir, folder, dt.datetime.combine(CAPTURED, dt.time(12), dt.timezone.utc))
    events = []
    chunks, run = parse.parse_chunks, validate.Validator.run

    def logged_chunks(*args):
        for listings, rejects in chunks(*args):
            events.append(("chunk", listings.height))
            yield listings, rejects

    def logged_run(self, frame, added=None):
        if all(row_level for _, row_level, _, _ in self.groups):  # (not the table-level rules)
            events.append(("check", frame.height))
        return run(self, frame, added)

    monkeypatch.setattr(parse, "parse_chunks", logged_chunks)
    monkeypatch.setattr(validate.Validator, "run", logged_run)

    parsed = stages.parse_new(data_dir)

    assert parsed.committed
    listings = parsed.listings.collect().sort("capture_id", "position")
    assert sorted(listings["title"]) == sorted(good)
    rejects = parsed.rejects.collect()
    assert sorted(rejects.filter(pl.col("stage") == "validate")["excerpt"]) == sorted(late)
    rule = "expect_column_pair_values_a_to_be_greater_than_b(captured_at,published_on)"
    outcome = next(o for o in parsed.report.outcomes if o.rule == rule)
    assert not outcome.success and outcome.unexpected_count == len(late)
    checks = [rows for kind, rows in events if kind == "check"]
    assert sum(checks) == len(good) + len(late) and len(checks) > 1
    assert all(rows >= 5 for rows in checks[:-1])
    last_chunk = max(i for i, (kind, _) in enumerate(events) if kind == "chunk")
    assert events.index(("check", checks[0])) < last_chunk  # checked before the parse was done
