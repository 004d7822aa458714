"""The raw store: a batch of captures is in place, under the sha256 of its bytes, once it closes and
has been flushed to disk in one go; a flush that fails leaves none of them in place."""

import ctypes
import errno
import hashlib

import pytest

from pipeline import rawstore, store
from pipeline.paths import DataDir

PAGES = [b"first page", b"second page", "third page, \u00b7 and all".encode()]


def stored(data_dir: DataDir) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (data_dir.root / "raw").rglob("*") if p.is_file()}


@pytest.mark.skipif(store._SYNCFS is None, reason="no syncfs here (not Linux)")
def test_a_batch_is_flushed_once_and_then_in_place_under_its_hashes(tmp_path, monkeypatch):
    data_dir = DataDir(tmp_path)
    calls = []
    real = store._SYNCFS
    monkeypatch.setattr(store, "_SYNCFS", lambda fd: calls.append(fd) or real(fd))
    with rawstore.Batch(data_dir) as batch:
        ids = [batch.put(page)[0] for page in PAGES]
        assert all(name.startswith(".") for name in stored(data_dir))  # not in place before the flush
    assert ids == [hashlib.sha256(page).hexdigest() for page in PAGES]
    assert stored(data_dir) == {hashlib.sha256(page).hexdigest(): page for page in PAGES}
    assert len(calls) == 1  # one flush for the three files, on the one file system they are on


def test_a_failed_flush_is_an_error_and_leaves_no_capture_in_place(tmp_path, monkeypatch):
    def failing_syncfs(fd):
        ctypes.set_errno(errno.EIO)
        return -1

    def failing_fsync(path):  # (where there is no syncfs)
        raise OSError(errno.EIO, "Input/output error")

    data_dir = DataDir(tmp_path)
    monkeypatch.setattr(store, "_SYNCFS", failing_syncfs)
    monkeypatch.setattr(store, "fsync_path", failing_fsync)
    with pytest.raises(OSError) as raised, rawstore.Batch(data_dir) as batch:
        for page in PAGES:
            batch.put(page)
    assert raised.value.errno == errno.EIO
    assert stored(data_dir) == {}  # neither the captures nor their temporary files
