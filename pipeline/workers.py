"""Work that holds the GIL (reading, hashing and parsing pages) spread over the cores.

A pool of processes, started with `spawn`: Polars' thread pool does not survive a `fork`. Starting
the workers costs half a second or more (each imports Polars and the parsers), so small amounts of
work stay in the calling process.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import polars as pl
import pyarrow as pa

Item = TypeVar("Item")
Result = TypeVar("Result")

MIN_ITEMS = 2_000  # below this many items, starting workers costs more than it saves
CHUNK_ITEMS = 250  # items a worker is given at a time: small enough to keep both cores busy to the end


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def spread(items: int) -> bool:
    """Whether `map_chunks` gives this many items to worker processes."""
    return items >= MIN_ITEMS and cores() > 1


def map_chunks(work: Callable[[Sequence[Item]], Result], items: Sequence[Item],
               waits: bool = False) -> Iterator[Result]:
    """`work(chunk)` for consecutive chunks of CHUNK_ITEMS `items`, in order: in worker processes
    when there are at least MIN_ITEMS items and more than one core, else here. `work` must be a
    module-level function (a worker imports it by name); `items` anything that slices. Work that
    `waits` on the disk gets one worker more than there are cores, to use a core while another
    worker waits.

    A frame a worker returns (alone or in a tuple) crosses as an Arrow IPC file in a temporary
    folder, not pickled through the pool's pipe, and is mapped here and its file's name removed:
    keep what outlives the chunk as a `copied` frame. (The parse workers' 2 GB of frames at a
    million listings took 5 s of pickling in the workers and 2 s of unpickling here; written and
    read as files, 1.5 s in all; mapped, the reading 0.1 s.) A process killed midway leaves its
    folder to the system's cleaning of the temporary directory."""
    chunks = [items[i:i + CHUNK_ITEMS] for i in range(0, len(items), CHUNK_ITEMS)]
    if not spread(len(items)) or len(chunks) < 2:
        yield from map(work, chunks)
        return
    with tempfile.TemporaryDirectory(prefix="papers-workers-") as folder:
        pool = ProcessPoolExecutor(min(cores() + waits, len(chunks)), mp_context=multiprocessing.get_context("spawn"))
        try:
            for result in pool.map(partial(_spooled, work, Path(folder)), chunks):
                yield _unspooled(result)
        finally:  # on an error, the chunks not started are dropped rather than waited for
            pool.shutdown(cancel_futures=True)


@dataclass(frozen=True)
class _Frame:
    path: Path


def _spooled(work: Callable, spool: Path, chunk) -> object:
    return _spool(work(chunk), spool)


def _spool(result, spool: Path):
    if isinstance(result, tuple):
        return tuple(_spool(part, spool) for part in result)
    if not isinstance(result, pl.DataFrame):
        return result
    fd, name = tempfile.mkstemp(dir=spool, suffix=".arrow")
    os.close(fd)
    result.write_ipc(name)
    return _Frame(Path(name))


def copied(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` in memory of its own. A frame `map_chunks` hands back is mapped from a file whose
    pages stay as long as any of its columns does (a selection of them too): what is kept after
    the chunk is done with is copied out of it (at a million listings, the parse keeps a narrow
    frame of every listing; kept mapped, it held all 2 GB of the frames' pages to the end)."""
    return pl.read_ipc(frame.write_ipc(None).getvalue())


def _unspooled(result):
    if isinstance(result, tuple):
        return tuple(_unspooled(part) for part in result)
    if not isinstance(result, _Frame):
        return result
    # Mapped, not read: the frame's columns are the page cache's pages, not a copy of them (the
    # parse's 2 GB of frames at a million listings: 0.1 s against 2.0 s, most of it the faults
    # of fresh memory). The file's name goes at once; its pages when the last of its columns does.
    with pa.memory_map(str(result.path)) as source:
        frame = pl.from_arrow(pa.ipc.open_file(source).read_all())
    result.path.unlink()
    return frame
