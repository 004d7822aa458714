"""Tables stored by parts (`store.PARTED`): a commit writes only the rows it adds and keeps the
parts it names, the ledger vouches for every part, and the catalog, the readers and a crash see the
table whole."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

from conftest import ROOT
from pipeline import schema, store
from pipeline.paths import DataDir


def rejects(*positions: int) -> pl.DataFrame:
    """Rejects rows, told apart by their position (the value the tests check)."""
    return schema.conform([{"capture_id": "c1", "position": p, "stage": "parse", "rule": "r",
                            "message": f"entry {p}", "excerpt": None} for p in positions], schema.REJECTS)


def parts(data_dir: DataDir, name: str = "rejects") -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((data_dir.tables / name).glob("*.parquet"))}


def ledger(data_dir: DataDir) -> dict:
    return json.loads((data_dir.tables / store.LEDGER).read_text())


def test_a_commit_adds_a_part_with_its_rows_and_leaves_the_earlier_parts_alone(tmp_path):
    data_dir = DataDir(tmp_path)
    store.write_tables(data_dir, {}, appended={"rejects": rejects(1, 2)})
    first = parts(data_dir)
    store.write_tables(data_dir, {}, appended={"rejects": rejects(3)})
    store.write_tables(data_dir, {}, appended={"rejects": rejects()})  # nothing new: no part
    now = parts(data_dir)
    assert list(now) == ["000001.parquet", "000002.parquet"]
    assert now["000001.parquet"] == first["000001.parquet"]
    assert pl.read_parquet(data_dir.tables / "rejects" / "000002.parquet")["position"].to_list() == [3]
    assert store.read_table(data_dir, "rejects")["position"].to_list() == [1, 2, 3]
    assert store.read_table(data_dir, "rejects", columns=["position"]).columns == ["position"]
    entry = ledger(data_dir)["rejects"]
    assert entry["rows"] == 3 and [p["rows"] for p in entry["parts"]] == [2, 1]
    # what the catalog's view reads
    assert duckdb.execute(f"SELECT list(position ORDER BY position) FROM read_parquet("
                          f"'{data_dir.tables}/rejects/*.parquet', union_by_name = true)").fetchone()[0] == [1, 2, 3]


def test_an_empty_table_has_one_empty_part_for_its_schema(tmp_path):
    data_dir = DataDir(tmp_path)
    store.write_tables(data_dir, {}, appended={"rejects": rejects()})
    assert list(parts(data_dir)) == ["000001.parquet"]
    assert store.read_table(data_dir, "rejects").schema == pl.Schema(schema.REJECTS)


def test_past_the_most_parts_a_commit_writes_the_table_as_one_part(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "MAX_PARTS", 3)
    data_dir = DataDir(tmp_path)
    for position in range(1, 4):
        store.write_tables(data_dir, {}, appended={"rejects": rejects(position)})
    assert len(parts(data_dir)) == 3
    store.write_tables(data_dir, {}, appended={"rejects": rejects(4)})
    assert list(parts(data_dir)) == ["000004.parquet"]
    assert pl.read_parquet(data_dir.tables / "rejects" / "000004.parquet")["position"].to_list() == [1, 2, 3, 4]
    assert [p["file"] for p in ledger(data_dir)["rejects"]["parts"]] == ["rejects/000004.parquet"]


def test_parts_staged_ahead_are_committed_in_order_and_folded_past_the_most_parts(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "MAX_PARTS", 3)
    data_dir = DataDir(tmp_path)
    store.write_tables(data_dir, {}, appended={"rejects": rejects(1)})
    staged = [store.stage_part(data_dir, "rejects", rejects(2)), store.stage_part(data_dir, "rejects", rejects(3, 4))]
    assert list(parts(data_dir)) == ["000001.parquet"]  # staged: not in place yet
    store.write_tables(data_dir, {}, appended={"rejects": staged})
    assert [p["file"] for p in ledger(data_dir)["rejects"]["parts"]] == [f"rejects/00000{n}.parquet" for n in (1, 2, 3)]
    for part in ledger(data_dir)["rejects"]["parts"]:
        assert part["sha256"] == hashlib.sha256((data_dir.tables / part["file"]).read_bytes()).hexdigest()
    assert store.read_table(data_dir, "rejects")["position"].to_list() == [1, 2, 3, 4]
    store.write_tables(data_dir, {}, appended={"rejects": [store.stage_part(data_dir, "rejects", rejects(5))]})
    assert list(parts(data_dir)) == ["000004.parquet"]  # past the most parts: one part, the staged file gone
    assert store.read_table(data_dir, "rejects")["position"].to_list() == [1, 2, 3, 4, 5]
    assert not [p for p in data_dir.root.rglob(".*") if p.name != ".lock"]


def test_a_part_is_written_in_row_groups_of_about_the_set_size(tmp_path, monkeypatch):
    """Row groups hold about ROW_GROUP_BYTES of a table's data (a writer holds one row group at a
    time), whatever its row count; the rows read back as written."""
    monkeypatch.setattr(store, "ROW_GROUP_BYTES", 256 * 1024)
    data_dir = DataDir(tmp_path)
    message = "m" * 1000  # each row about a kilobyte: 4 MB in all, 256 rows to a group
    frame = schema.conform([{"capture_id": "c1", "position": p, "stage": "parse", "rule": "r", "message": message,
                             "excerpt": None} for p in range(4000)], schema.REJECTS)
    store.write_tables(data_dir, {}, appended={"rejects": frame})
    meta = pq.ParquetFile(data_dir.tables / "rejects" / "000001.parquet").metadata
    rows = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sum(rows) == 4000 and meta.num_row_groups >= 4000 // 512
    assert max(rows) <= 512
    assert store.read_table(data_dir, "rejects").equals(frame)


def test_a_table_replaced_whole_drops_its_parts(tmp_path):
    data_dir = DataDir(tmp_path)
    store.write_tables(data_dir, {}, appended={"rejects": rejects(1)})
    store.write_tables(data_dir, {}, appended={"rejects": rejects(2)})
    store.write_tables(data_dir, {"rejects": rejects(7, 8)})  # a full refresh
    assert list(parts(data_dir)) == ["000003.parquet"]
    assert store.read_table(data_dir, "rejects")["position"].to_list() == [7, 8]


def test_a_table_written_whole_is_cut_into_parts_of_about_the_set_size(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "PART_BYTES", 40_000)
    data_dir = DataDir(tmp_path)
    frame = schema.conform([{"capture_id": "c1", "position": p, "stage": "parse", "rule": "r", "message": "m" * 1000,
                             "excerpt": None} for p in range(100)], schema.REJECTS)  # about 100 KB
    store.write_tables(data_dir, {"rejects": frame})
    rows = [part["rows"] for part in ledger(data_dir)["rejects"]["parts"]]
    assert len(rows) == 3 and sum(rows) == 100 and max(rows) - min(rows) <= 40
    assert store.read_table(data_dir, "rejects").equals(frame)


def test_a_commit_keeps_the_parts_it_names_and_removes_the_others(tmp_path, monkeypatch):
    data_dir = DataDir(tmp_path)
    for positions in ((1, 2), (3,), (4, 5)):
        store.write_tables(data_dir, {}, appended={"rejects": rejects(*positions)})
    first, _, third = ledger(data_dir)["rejects"]["parts"]
    before = parts(data_dir)
    store.write_tables(data_dir, {}, appended={"rejects": rejects(6)}, kept={"rejects": [first, third]})
    now = parts(data_dir)
    assert list(now) == ["000001.parquet", "000003.parquet", "000004.parquet"]
    assert now["000001.parquet"] == before["000001.parquet"] and now["000003.parquet"] == before["000003.parquet"]
    assert store.read_table(data_dir, "rejects")["position"].to_list() == [1, 2, 4, 5, 6]
    assert ledger(data_dir)["rejects"]["rows"] == 5
    # past the most parts, the table is written whole from the parts kept and the new rows only
    monkeypatch.setattr(store, "MAX_PARTS", 2)
    store.write_tables(data_dir, {}, appended={"rejects": rejects(7)}, kept={"rejects": [first, third]})
    assert list(parts(data_dir)) == ["000005.parquet"]
    assert store.read_table(data_dir, "rejects")["position"].to_list() == [1, 2, 4, 5, 7]
    with pytest.raises(ValueError, match="among those committed"):
        store.write_tables(data_dir, {}, appended={"rejects": rejects(8)}, kept={"rejects": [first]})
    assert store.read_table(data_dir, "rejects")["position"].to_list() == [1, 2, 4, 5, 7]


def test_a_table_committed_as_one_file_becomes_the_first_part(tmp_path):
    """A data directory written before parts: `rejects.parquet`, which the ledger vouches for."""
    data_dir = DataDir(tmp_path)
    data_dir.tables.mkdir()
    rejects(1, 2).write_parquet(data_dir.table("rejects"))
    entry = {"rows": 2, "audit": None, "sha256": hashlib.sha256(data_dir.table("rejects").read_bytes()).hexdigest()}
    (data_dir.tables / store.LEDGER).write_text(json.dumps({"rejects": entry}))
    assert store.read_table(data_dir, "rejects")["position"].to_list() == [1, 2]

    store.write_tables(data_dir, {}, appended={"rejects": rejects(3)})
    assert not data_dir.table("rejects").exists()
    assert list(parts(data_dir)) == ["000000.parquet", "000001.parquet"]
    assert store.read_table(data_dir, "rejects")["position"].to_list() == [1, 2, 3]
    assert ledger(data_dir)["rejects"]["parts"][0]["sha256"] == entry["sha256"]


def test_a_missing_part_or_a_retyped_column_in_one_is_named(tmp_path, monkeypatch):
    data_dir = DataDir(tmp_path)
    store.write_tables(data_dir, {}, appended={"rejects": rejects(1)})
    store.write_tables(data_dir, {}, appended={"rejects": rejects(2)})
    # a narrow read still checks every column of every part
    monkeypatch.setitem(schema.REJECTS, "message", pl.Int64)
    with pytest.raises(store.StoreError, match=r"rejects/000001.parquet was written in another schema.*message"):
        store.read_table(data_dir, "rejects", columns=["position"])
    monkeypatch.undo()
    (data_dir.tables / "rejects" / "000001.parquet").unlink()
    with pytest.raises(store.StoreError, match=r"rejects/000001.parquet is missing, though it was committed"):
        store.read_table(data_dir, "rejects")
    (data_dir.tables / store.LEDGER).unlink()
    with pytest.raises(store.StoreError, match=r"does not know the parts in .*rejects"):
        store.read_table(data_dir, "rejects")


def test_some_parts_read_or_scanned_are_each_checked_first(tmp_path):
    data_dir = DataDir(tmp_path)
    for batch in ((1, 2), (3,), (4, 5)):
        store.write_tables(data_dir, {}, appended={"rejects": rejects(*batch)})
    first, second, third = store.parts(data_dir, "rejects")
    assert store.read_table(data_dir, "rejects", only=[third])["position"].to_list() == [4, 5]
    scanned = store.scan_parts(data_dir, "rejects", [first, second])
    assert scanned.filter(pl.col("position") > 1).collect()["position"].to_list() == [2, 3]
    assert scanned.collect_schema() == pl.Schema(schema.REJECTS)
    path = data_dir.tables / second["file"]
    rejects(9).write_parquet(path)  # another file, whole and readable
    with pytest.raises(store.StoreError, match=r"rejects/000002.parquet is not the file its commit wrote"):
        store.scan_parts(data_dir, "rejects", [first, second])
    assert store.scan_parts(data_dir, "rejects", [first]).collect()["position"].to_list() == [1, 2]


def test_a_file_is_hashed_once_a_process_and_again_once_it_was_written(tmp_path, monkeypatch):
    """A run's stages read the same files: one this process found to be what its commit wrote is
    not hashed again while `stat` says it was not written since; one written since, even to the
    same size and modification time, is hashed again and refused."""
    data_dir = DataDir(tmp_path)
    store.write_tables(data_dir, {}, appended={"rejects": rejects(1, 2)})
    hashed, digest = [], hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda fh, name: hashed.append(fh.name) or digest(fh, name))
    assert store.read_table(data_dir, "rejects")["position"].to_list() == [1, 2]
    (part,) = store.parts(data_dir, "rejects")
    path = data_dir.tables / part["file"]
    assert hashed == [str(path)]
    store.check(data_dir, "rejects")
    assert store.read_table(data_dir, "rejects")["position"].to_list() == [1, 2]
    assert hashed == [str(path)]
    data, before = bytearray(path.read_bytes()), path.stat()
    data[len(data) // 3] ^= 0xFF  # one byte inside the file (its footer, the schema, still reads)
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    with pytest.raises(store.StoreError, match=r"rejects/000001.parquet is not the file its commit wrote"):
        store.check(data_dir, "rejects")
    assert hashed == [str(path)] * 2


# A run in a process of its own: it reads the rejects and commits a table of its own; the rows it read
# and how many files it hashed, or why it refused.
READ_REJECTS = textwrap.dedent("""
    import hashlib, sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from pipeline import schema, store
    from pipeline.paths import DataDir
    data_dir = DataDir(Path({data!r}))
    hashed, digest = [], hashlib.file_digest
    hashlib.file_digest = lambda fh, name: hashed.append(fh.name) or digest(fh, name)
    try:
        rows = store.read_table(data_dir, "rejects").height
    except store.StoreError as err:
        print("refused:", err)
    else:
        print(rows, len(hashed))
        store.write_tables(data_dir, {{"aliases": schema.empty(schema.ALIASES)}})
""")


def test_a_file_verified_by_an_earlier_process_is_not_hashed_again_until_written(tmp_path):
    """Each run is a process of its own and reads the parts earlier runs read: the record of
    verified files (`store.VERIFIED`, written by a commit) vouches for a file an earlier process
    hashed while its `stat` is the one recorded. One written since, even to the same size and
    modification time, is hashed again and refused; an unreadable record only means hashing again."""
    data_dir = DataDir(tmp_path)
    store.write_tables(data_dir, {}, appended={"rejects": rejects(1, 2, 3)})
    (part,) = store.parts(data_dir, "rejects")
    path = data_dir.tables / part["file"]
    # (a file is recorded only if written before its hashing began, by the file system's clock)
    deadline = time.monotonic() + 10
    while store._file_system_now(data_dir.tables) <= path.stat().st_ctime_ns and time.monotonic() < deadline:
        time.sleep(0.01)

    def read() -> list[str]:
        script = READ_REJECTS.format(root=str(ROOT), data=str(tmp_path))
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()

    assert read() == ["3", "1"]  # hashed: nothing recorded yet
    info = path.stat()
    record = json.loads((data_dir.tables / store.VERIFIED).read_text())
    assert record[part["file"]] == [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns,
                                    part["sha256"]]
    assert read() == ["3", "0"]  # vouched for
    (data_dir.tables / store.VERIFIED).write_text("{not json")
    assert read() == ["3", "1"]
    assert read() == ["3", "0"]
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # one byte inside the file (its footer, the schema, still reads)
    path.write_bytes(bytes(data))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert path.stat().st_size == info.st_size and path.stat().st_mtime_ns == info.st_mtime_ns
    assert read()[:2] == ["refused:", str(path)]


def test_a_file_written_as_late_as_its_hashing_began_is_not_recorded(tmp_path, monkeypatch):
    """A file written in the same tick of the file system's clock as its hashing began could be
    written again within that tick, its `stat` the same: it is not recorded (the next process hashes
    it); one written a tick earlier is."""
    data_dir = DataDir(tmp_path)
    store.write_tables(data_dir, {}, appended={"rejects": rejects(1)})
    (part,) = store.parts(data_dir, "rejects")
    written = (data_dir.tables / part["file"]).stat().st_ctime_ns
    aliases = schema.empty(schema.ALIASES)
    monkeypatch.setattr(store, "_file_system_now", lambda folder: written)
    assert store.read_table(data_dir, "rejects").height == 1
    store.write_tables(data_dir, {"aliases": aliases})
    assert not (data_dir.tables / store.VERIFIED).exists()
    monkeypatch.setattr(store, "_VERIFIED", {})  # (as a process of its own)
    monkeypatch.setattr(store, "_file_system_now", lambda folder: written + 1)
    assert store.read_table(data_dir, "rejects").height == 1
    store.write_tables(data_dir, {"aliases": aliases})
    assert part["file"] in json.loads((data_dir.tables / store.VERIFIED).read_text())


def test_a_commit_forgets_the_files_verified_that_are_gone_or_written_since(tmp_path, monkeypatch):
    """A process that lives long (`dagster dev`) verifies part after part, and commits replace
    them: a commit drops from what the process holds verified the files gone or written since, and
    keeps the others."""
    monkeypatch.setattr(store, "_VERIFIED", {})
    monkeypatch.setattr(store, "MAX_PARTS", 2)
    data_dir = DataDir(tmp_path)
    for position in (1, 2):
        store.write_tables(data_dir, {}, appended={"rejects": rejects(position)})
    first = [data_dir.tables / part["file"] for part in store.parts(data_dir, "rejects")]
    assert store.read_table(data_dir, "rejects").height == 2
    assert set(first) <= set(store._VERIFIED)
    store.write_tables(data_dir, {}, appended={"rejects": rejects(3)})  # past the most parts: one part
    (folded,) = [data_dir.tables / part["file"] for part in store.parts(data_dir, "rejects")]
    assert not any(path.exists() for path in first if path != folded)
    assert store.read_table(data_dir, "rejects").height == 3
    store.write_tables(data_dir, {"aliases": schema.empty(schema.ALIASES)})
    assert folded in store._VERIFIED and not set(store._VERIFIED) & (set(first) - {folded})


KILLED_COMMIT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    import polars as pl
    from pipeline import schema, store
    from pipeline.paths import DataDir
    store.MAX_PARTS = 2
    rows = schema.conform([{{"capture_id": "c1", "position": 9, "stage": "parse", "rule": "r",
                             "message": "entry 9", "excerpt": None}}], schema.REJECTS)
    store.write_tables(DataDir.resolve({data!r}), {{}}, appended={{"rejects": rows}}, label="grow")
""")


@pytest.mark.parametrize("point, done", [("commit:grow:staged", False), ("commit:grow:journaled", True),
                                         ("commit:grow:rejects:after-move", True)])
def test_a_commit_that_folds_the_parts_killed_halfway_is_finished_or_undone(tmp_path, monkeypatch, point, done):
    monkeypatch.setattr(store, "MAX_PARTS", 2)
    data_dir = DataDir(tmp_path / "data")
    for position in (1, 2):
        store.write_tables(data_dir, {}, appended={"rejects": rejects(position)})
    before = parts(data_dir)
    script = KILLED_COMMIT.format(root=str(ROOT), data=str(data_dir.root)) + "\n"
    killed = subprocess.run([sys.executable, "-c", script], env={"PAPERS_FAULT": point, "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL and f"fault point {point}: killing process" in killed.stderr

    with store.exclusive(data_dir, "the next run"):  # which finishes (or clears) what the kill left
        pass
    expected = [1, 2, 9] if done else [1, 2]
    assert store.read_table(data_dir, "rejects")["position"].to_list() == expected
    assert (list(parts(data_dir)) == ["000003.parquet"]) if done else (parts(data_dir) == before)
    assert not [p for p in data_dir.root.rglob(".*") if p.name != ".lock"]
    assert duckdb.execute(f"SELECT count(*) FROM read_parquet('{data_dir.tables}/rejects/*.parquet')").fetchone()[0] == len(expected)


def test_recovering_clears_what_killed_writers_left_and_only_that(tmp_path):
    data_dir = DataDir(tmp_path)
    old = time.time() - store.STALE_SECONDS - 60

    def make(relative: str, age: float | None = None):
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        if age is not None:
            os.utime(path, (age, age))
        return path

    gone = [make("tables/listings/.staged-1.pending"), make("tables/.papers.parquet.tmp"),
            make("imports/2026/.page.txt.tmp"), make("raw/ab/.abcd.1.tmp", old), make("fetched/x/.day.json.pending", old),
            make(".fetch-journal.tmp", old)]
    kept = [make("raw/ab/abcd"), make("tables/papers.parquet"), make("tables/listings/not-hidden.tmp"),
            make("raw/cd/.cdef.2.tmp"),  # a fetch of now, which has a lock of its own, may still be writing it
            make("fetched/y/.day.json.pending")]
    store.recover(data_dir)
    assert [p for p in gone if p.exists()] == [] and all(p.exists() for p in kept)
