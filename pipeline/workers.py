"""Work that holds the GIL (reading, hashing and parsing pages; MinHash signing) spread over the cores.

A pool of processes, started with `spawn`: Polars' thread pool does not survive a `fork`. Starting
the workers costs half a second or more (each imports Polars and the parsers), so small amounts of
work stay in the calling process.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

MIN_ITEMS = 2_000  # below this many items, starting workers costs more than it saves
CHUNK_ITEMS = 250  # items a worker is given at a time: small enough to keep both cores busy to the end


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def map_chunks(work: Callable[[Sequence[Item]], Result], items: Sequence[Item], chunk: int | None = None,
               minimum: int | None = None) -> Iterator[Result]:
    """`work(chunk)` for consecutive chunks of `items` (`chunk` items each, CHUNK_ITEMS unless told),
    in order: in worker processes when there are at least `minimum` (MIN_ITEMS) items and more than
    one core, else here. `work` must be a module-level function (a worker imports it by name);
    `items` anything that slices, a list or a frame."""
    chunk = chunk or CHUNK_ITEMS
    chunks = [items[i:i + chunk] for i in range(0, len(items), chunk)]
    workers = min(cores(), len(chunks))
    if len(items) < (MIN_ITEMS if minimum is None else minimum) or workers < 2:
        yield from map(work, chunks)
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield from pool.map(work, chunks)
    finally:  # on an error, the chunks not started are dropped rather than waited for
        pool.shutdown(cancel_futures=True)
