"""Work spread over worker processes gives what the same work gives in one: in order, nothing lost."""

import datetime as dt
import os
import tempfile
import time

import polars as pl
import pytest

from bench.render import block_page
from pipeline import parse, workers
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


def tagged(chunk: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    return chunk.with_columns(pid=pl.lit(os.getpid())), chunk.head(1), chunk.height


def test_frames_go_to_the_workers_and_come_back_whole_and_in_order(spread, tmp_path, monkeypatch):
    """A frame of items and the frames a worker returns cross as files; none is left behind."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    frame = pl.DataFrame({"i": range(20), "text": [None if i % 6 == 0 else "Fréchet ∂ " * i for i in range(20)],
                          "day": [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(20)],
                          "tags": [[f"t{i}"] * (i % 3) for i in range(20)]})
    results = workers.map_chunks(tagged, frame)
    out = [next(results)]
    assert [p.name.startswith("papers-workers-") for p in tmp_path.iterdir()] == [True]
    out += list(results)
    whole = pl.concat([tagged_rows for tagged_rows, _, _ in out])
    assert whole.drop("pid").equals(frame)
    assert os.getpid() not in set(whole["pid"])
    assert [first["i"].to_list() for _, first, _ in out] == [[i] for i in range(0, 20, 3)]
    assert [n for _, _, n in out] == [3] * 6 + [2]
    assert list(tmp_path.iterdir()) == []


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


def test_signatures_signed_in_workers_are_those_signed_here(spread, monkeypatch):
    """Records signed two at a time in worker processes: each row is its own record's signature, in
    order; the same texts sign alike, and texts with no shingle in common share almost no values."""
    import numpy as np
    import polars as pl

    from pipeline import dedup

    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    texts = [" ".join(words[i:] + words[:i]) for i in range(5)]
    records = pl.DataFrame({"title_key": [f"title {i % 5}" for i in range(7)],
                            "abstract_key": [texts[i % 5] for i in range(7)]})
    here = dedup.signatures(records)
    monkeypatch.setattr(dedup, "SIGN_CHUNK", 2)
    monkeypatch.setattr(dedup, "SIGN_IN_WORKERS", 1)
    there = dedup.signatures(records)
    assert there.shape == (7, dedup.NUM_PERM) and np.array_equal(there, here)
    assert np.array_equal(there[0], there[5]) and np.array_equal(there[1], there[6])
    unrelated = dedup.signatures(pl.DataFrame({"title_key": ["one two three"], "abstract_key": ["four five six"]}))
    assert (unrelated[0] == there[0]).mean() < 0.1
