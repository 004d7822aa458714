"""Resolve listings into papers: one row per paper, every listing kept as a sighting.

Listings that agree on arXiv id, normalized title and normalized abstract are one *record*; records
are joined into papers in passes, cheapest and surest first:

1. `arxiv_id`: the same arXiv id;
2. `title_key`: the same normalized title (Unicode NFKD, LaTeX accents reduced to their letter,
   accents and case dropped, every run of other characters one space) and compatible abstracts: one
   a prefix of the other (a truncated abstract) or a MinHash Jaccard estimate of at least 0.3. Two
   papers with the same title and different abstracts stay apart;
3. `near_duplicate`: MinHash (rensa, 128 permutations) over word 3-shingles of the normalized title
   and the abstract's first 160 words, LSH banding (32 bands of 4) to find candidates, kept when the
   Jaccard estimate is at least 0.5, a threshold chosen by measurement on a labelled evaluation set
   (`bench/dedup_eval.py` in the pipeline's repository);
4. `title_only`: a record without an abstract joins the one paper that shares its title, if exactly
   one does.

Records with two different arXiv ids are never joined. The grouping does not depend on the order in
which listings arrive: each resolution groups the new records, and every paper they could join or
change, again from scratch, pass by pass in a fixed order; the other papers keep their records.
Only new records are signed, and only the papers that new listings reach are aggregated again.

Stable ids: a paper keeps the id it had in the previous state (or the previous release's
sightings); a paper that turns out to be two keeps it in the part that holds its first sighting.
When papers turn out to be one, the id first seen survives and the others become
aliases. A new paper's id is `p` + 16 hex digits of the sha256 of its earliest listing's id.

Merge policy per column, over the sightings of one paper ordered by capture time (ties by listing id):

- title, abstract, authors, author count, organization, arXiv id, links, keywords, AI summary,
  GitHub stars (every column a listing carries, but the two below): the latest sighting that has a
  value;
- daily_date: the earliest Daily Papers day any sighting names;
- published_on: the most trustworthy basis (API date, then a date with an explicit year, then an
  inferred year), latest among equals;
- upvotes and comments: as of the latest capture that showed them;
- first_seen_at / last_seen_at: earliest and latest capture time; sources: every kind of page seen.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import polars_hash as plh
import pyarrow as pa
from rensa import RMinHash

from pipeline import schema, workers
from pipeline.normalize import keys

# 32 bands of 4: pairs at Jaccard 0.5 become candidates with p = 0.87, at 0.6 with p = 0.99, at 0.2
# with p = 0.05, so few pairs need checking.
NUM_PERM, BANDS, ROWS, SEED = 128, 32, 4, 1729
SHINGLE_WORDS = 160  # of the abstract: enough to tell papers apart, and a truncation keeps its start
NEAR_JACCARD = 0.5
TITLE_JACCARD = 0.3
PREFIX_MIN_CHARS = 80  # a shorter abstract is too little to call another a truncation of it
SIGN_CHUNK = 5_000  # records signed at a time (larger chunks spend more time on fresh memory)

# Every column of a paper that its listings carry is the latest sighting's value, but these.
_OWN_POLICY = ("published_on", "daily_date")
_BASIS_RANK = {basis: rank for rank, basis in enumerate(reversed(schema.PUBLISHED_ON_BASES))}
# What resolution keeps between runs: each record in use with its paper (stored as `resolver_state`)
# and its keys and signature (stored as `records`).
STATE = {**schema.RESOLVER_STATE, **schema.RECORDS}
# Listings are matched, and papers given their abstract, by the hash of the abstract: null for none.
_TEXT_HASH = plh.col("abstract").nchash.xxhash64().alias("text_hash")


@dataclass
class Resolution:
    # Lazy when the previous papers came as a list of parts: the parts kept are then scans of them,
    # never read whole.
    papers: pl.DataFrame | pl.LazyFrame
    sightings: pl.DataFrame
    merges: pl.DataFrame
    aliases: pl.DataFrame  # every id that became another's alias, cumulative
    state: pl.DataFrame  # `STATE`
    # Which of the previous papers' parts (by position) hold none of the papers made again: their
    # rows, in that order, are the first rows of `papers`, as they were.
    kept_parts: list[int] = field(default_factory=list)
    # The rows of `papers` after the kept parts' (all of them when no part is kept).
    written: pl.DataFrame | None = None


def short_hash(expr: pl.Expr) -> pl.Expr:
    """16 hex digits of the sha256 of a string column: stable across versions and machines."""
    return expr.chash.sha2_256().str.slice(0, 16)


def with_record_keys(narrow: pl.DataFrame, listings: pl.LazyFrame,
                     known: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The `narrow` listings (with `text_hash`, the hash of their abstract, null for none) with
    their record id; the records of those not in `known` (listing_id, record_id: the listings
    resolved before, whose keys the state keeps): one row per record id with its keys, in no
    particular order; and their distinct abstracts (text_hash, abstract). `listings` are
    the rows of `narrow` with their abstracts, read only for the first listing of each text."""
    old = narrow.join(known, on="listing_id", how="inner")
    new = narrow.join(known, on="listing_id", how="anti") if known.height else narrow
    # Normalizing is the costly part, and most abstracts are seen many times: once per distinct text.
    first = (narrow.select("text_hash", row=pl.int_range(pl.len(), dtype=pl.UInt32))
             .filter(pl.col("text_hash").is_in(new["text_hash"].implode())).unique("text_hash"))
    texts = _first_texts(listings, first["row"])
    abstracts = texts.select("text_hash", abstract_key=keys(texts["abstract"]))
    # Keys and ids per distinct (arXiv id, title key, abstract text), not per listing: the abstract
    # keys are not copied to every listing of a record (1.2 GB at a million listings). The keys
    # are streamed past the distinct combinations (which the join holds), each record id hashed on
    # the way and the keys not kept: a record takes its key by position (`k`) afterwards. With the
    # keys held by the join, it copied them (at a million listings, 2.4 s against 1.5 s, and 290
    # MiB more). Every record's combinations agree on its keys, so any of them is its first.
    on = ["arxiv_id", "title_key", "text_hash"]
    combos = (abstracts.lazy().with_row_index("k")
              .join(new.lazy().select(on).unique(), on="text_hash", how="right", nulls_equal=True)
              .select(*on, "k", record_id=short_hash(pl.concat_str(
                  [pl.col("arxiv_id").fill_null(""), pl.col("title_key"), pl.col("abstract_key").fill_null("")],
                  separator="\x1f"))).collect(engine="streaming"))
    keyed = new.join(combos.select(*on, "record_id"), on=on, how="left", nulls_equal=True, maintain_order="left")
    made = combos.group_by("record_id").agg(pl.col("arxiv_id", "title_key", "k").first())
    made = made.select("record_id", "arxiv_id", "title_key", abstract_key=abstracts["abstract_key"].gather(made["k"]))
    return pl.concat([old, keyed], how="diagonal"), made, texts


def _first_texts(listings: pl.LazyFrame, rows: pl.Series) -> pl.DataFrame:
    """The abstracts (text_hash, abstract) of the `listings` at positions `rows`: one pass that
    keeps only those (the abstracts of a million listings are 1.6 GB, 80 % of the listings; of
    distinct texts, half that). Each slice's texts are copied as they pass (joined to an empty
    string): what a filter keeps points into the decoded pages it came from, which would all stay
    in memory; given their hashes by a join afterwards, as before, they were copied whole at the
    end (at a million listings, 2.0-2.8 s and 2.4 GiB above where it started, against 1.3-1.4 s
    and 1.1 GiB)."""
    return (listings.select("abstract").with_row_index("row").filter(pl.col("row").is_in(rows.implode()))
            .select(_TEXT_HASH, abstract=pl.concat_str([pl.col("abstract"), pl.lit("")]))
            .collect(engine="streaming"))


def signatures(records: pl.DataFrame) -> np.ndarray:
    """MinHash signatures (rows: records, NUM_PERM uint32 columns) of word 3-shingles of the title
    key and the first SHINGLE_WORDS words of the abstract key, a chunk of records at a time (to
    bound memory), in a thread per core. Tokens are hashed column-wise; rensa does the MinHash in
    Rust (its answer comes back as Python lists: making them and an array from them is a quarter of
    the signing).

    Threads, not processes: Polars and numpy, most of the work, run outside the GIL, and nothing
    is started or copied. (500,000 records: 6.0 s in two threads, 9.9 s in two worker processes,
    9.6 s in one thread.)"""
    chunks = [records.slice(start, SIGN_CHUNK) for start in range(0, records.height, SIGN_CHUNK)]
    # The rows come as a list per record: Python's collector, set off by so many new lists, spent a
    # tenth of the signing on looking through them for cycles they cannot have.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if len(chunks) > 1 and workers.cores() > 1:
            with ThreadPoolExecutor(workers.cores()) as pool:
                parts = list(pool.map(_sign, chunks))
        else:
            parts = [_sign(chunk) for chunk in chunks]
    finally:
        if collecting:
            gc.enable()
    return np.concatenate(parts) if parts else np.zeros((0, NUM_PERM), dtype=np.uint32)


def _sign(records: pl.DataFrame) -> np.ndarray:
    n = records.height
    # The title's words, then the abstract's first SHINGLE_WORDS: split from one string, a quarter
    # faster than joining the two texts' lists of words.
    words = (records.select(
        doc=pl.int_range(pl.len(), dtype=pl.UInt32),
        w=pl.concat_str([pl.col("title_key"), pl.col("abstract_key").fill_null("")], separator=" ")
        .str.split(" ").list.head(pl.col("title_key").str.count_matches(" ", literal=True) + 1 + SHINGLE_WORDS))
        .explode("w").filter(pl.col("w") != "")
        .with_columns(h=plh.col("w").nchash.xxhash64()))
    h, doc = words["h"].to_numpy(), words["doc"].to_numpy()
    combined = h[:-2] * np.uint64(0x9E3779B97F4A7C15) + h[1:-1] * np.uint64(0xC2B2AE3D27D4EB4F) + h[2:]
    same_doc = doc[:-2] == doc[2:]
    tokens, token_doc = combined[same_doc], doc[:-2][same_doc]
    # A document shorter than a shingle is signed by its words alone.
    counts = np.bincount(token_doc, minlength=n)
    short = np.flatnonzero(counts == 0)
    if len(short):
        pick = np.isin(doc, short)
        tokens = np.concatenate([tokens, h[pick]])
        token_doc = np.concatenate([token_doc, doc[pick]])
        order = np.argsort(token_doc, kind="stable")
        tokens, token_doc = tokens[order], token_doc[order]
        counts = np.bincount(token_doc, minlength=n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.uint64)
    matrix = RMinHash.digest_matrix_from_flat_token_hashes(np.ascontiguousarray(tokens, dtype=np.uint64),
                                                           offsets, NUM_PERM, SEED)
    # (read as one stream of numbers: np.asarray looked at each row list as a nested sequence, a
    # third slower)
    values = itertools.chain.from_iterable(matrix.to_rows())
    return np.fromiter(values, dtype=np.uint32, count=n * NUM_PERM).reshape(n, NUM_PERM)


def band_keys(sig: np.ndarray) -> np.ndarray:
    """One uint64 key per LSH band (BANDS bands of ROWS signature values)."""
    bands = sig.reshape(len(sig), BANDS, ROWS)
    key = bands[:, :, 0].astype(np.uint64)
    for j in range(1, ROWS):  # one band column at a time: no uint64 copy of the whole matrix
        key *= np.uint64(0x9E3779B97F4A7C15)
        key += bands[:, :, j]
    return key


def _binary_rows(sig: np.ndarray) -> pl.Series:
    """Each signature row as one binary value, straight from the array's memory (no Python objects)."""
    width = sig.shape[1] * sig.itemsize
    rows = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(sig),
                                                [None, pa.py_buffer(np.ascontiguousarray(sig))])
    return pl.Series("signature", rows).cast(pl.Binary)


def _matrix(rows: pl.Series) -> np.ndarray:
    """Binary signature rows back into a (rows, NUM_PERM) uint32 matrix, read from the Arrow buffers."""
    array = rows.rechunk().to_arrow().cast(pa.large_binary())
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset:array.offset + len(array) + 1]
    if not (np.diff(offsets) == NUM_PERM * 4).all():
        raise ValueError(f"resolver state: signatures must be {NUM_PERM} uint32 values each")
    values = np.frombuffer(array.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
    return values.view(np.uint32).reshape(-1, NUM_PERM)


def jaccard(sig: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    """MinHash Jaccard estimates of the record pairs (a[i], b[i]), a chunk at a time."""
    out = np.empty(len(a), dtype=np.float32)
    for start in range(0, len(a), chunk):
        end = start + chunk
        out[start:end] = (sig[a[start:end]] == sig[b[start:end]]).mean(axis=1)
    return out


class _Components:
    """Union-find over records that refuses to join two different arXiv ids. Starts from `parent`
    (each record pointing at its group's smallest index) and `arxiv` (each group's arXiv id at its root)."""

    def __init__(self, parent: np.ndarray, arxiv: list[str | None]):
        self.parent = parent.tolist()
        self.arxiv = arxiv

    def roots(self) -> np.ndarray:
        """Every record's root, by pointer jumping over the whole array at once."""
        parent = np.asarray(self.parent, dtype=np.int64)
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                return parent
            parent = jumped

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        xa, xb = self.arxiv[ra], self.arxiv[rb]
        if xa is not None and xb is not None and xa != xb:
            return False
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.arxiv[ra] = xa or xb
        return True


def _mask(n: int, idx: np.ndarray) -> pl.Series:
    """True at the positions `idx` of `n` rows. (A filter by `is_in(idx)` hashed every index:
    at a million listings, 0.3 s of the fresh resolve's pairs, whose region is every record.)"""
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    return pl.Series(mask)


def _pairs_on(records: pl.DataFrame, new_idx: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (new record, other record) sharing a non-null `key`."""
    rows = records.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("i"), key)
    keyed = rows.filter(pl.col(key).is_not_null())
    new = rows.filter(_mask(records.height, new_idx) & pl.col(key).is_not_null())
    pairs = new.join(keyed, on=key, suffix="_o").filter(pl.col("i") != pl.col("i_o"))
    return pairs["i"].to_numpy(), pairs["i_o"].to_numpy()


def _lsh_pairs(keys: np.ndarray, new_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (new record, other record) sharing an LSH band, a band at a time (so that
    memory holds one band's matches, not all of them)."""
    n = len(keys)
    if n == 0 or len(new_idx) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    index = np.arange(n, dtype=np.int64)
    mask = np.zeros(n, dtype=bool)
    mask[new_idx] = True
    is_new = pl.Series("is_new", mask)
    found = []
    for band in range(BANDS):
        column = pl.DataFrame({"i": index, "key": keys[:, band]})
        new = pl.DataFrame({"i": new_idx.astype(np.int64), "key": keys[new_idx, band]})
        # Each pair once: two new records meet from both sides, keep the side with the smaller index.
        pairs = (new.join(column, on="key", suffix="_o")
                 .filter((pl.col("i") < pl.col("i_o"))
                         | ((pl.col("i") != pl.col("i_o")) & ~pl.lit(is_new).gather(pl.col("i_o"))))
                 .select("i", "i_o"))
        if pairs.height:
            found.append(pairs)
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = pl.concat(found).unique()
    return pairs["i"].to_numpy(), pairs["i_o"].to_numpy()


def _is_prefix(abstract_keys: pl.Series, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0:
        return np.zeros(0, dtype=bool)
    ab = pl.DataFrame({"x": abstract_keys.gather(a), "y": abstract_keys.gather(b)})
    shorter = pl.when(pl.col("x").str.len_chars() <= pl.col("y").str.len_chars())
    return ab.select(
        (shorter.then(pl.col("y").str.starts_with(pl.col("x"))).otherwise(pl.col("x").str.starts_with(pl.col("y")))
         & (pl.min_horizontal(pl.col("x").str.len_chars(), pl.col("y").str.len_chars()) >= PREFIX_MIN_CHARS))
        .fill_null(False)).to_series().to_numpy()


def _with_stored_keys(abstract_keys: pl.Series, record_ids: pl.Series, idx: np.ndarray,
                      stored: pl.LazyFrame) -> pl.Series:
    """`abstract_keys` with those of the records at `idx` read from `stored` (record_id,
    abstract_key): one pass over it that keeps only those."""
    if len(idx) == 0:
        return abstract_keys
    wanted = record_ids.gather(idx)
    found = (stored.select("record_id", "abstract_key").filter(pl.col("record_id").is_in(wanted.implode()))
             .unique("record_id").collect(engine="streaming"))
    values = wanted.to_frame().join(found, on="record_id", how="left", maintain_order="left")["abstract_key"]
    return abstract_keys.clone().scatter(idx, values)


def fingerprint(columns: dict) -> pl.Expr:
    """A 64-bit hash of each whole row of a frame with these columns (name -> type), the same in
    every Polars version (polars-hash's xxhash64 of the row's values as text)."""
    parts = []
    for name, dtype in columns.items():
        column = pl.col(name).list.join("\x1e") if isinstance(dtype, pl.List) else pl.col(name)
        parts.append(column.cast(pl.String).fill_null("\x00"))
    return pl.concat_str(parts, separator="\x1f").nchash.xxhash64().alias("listing_hash")


def _pairs_among(records: pl.DataFrame, idx: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) of the records `idx` sharing a non-null `key`."""
    keyed = (records.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("i"), key)
             .filter(_mask(records.height, idx) & pl.col(key).is_not_null()))
    pairs = keyed.join(keyed, on=key, suffix="_o").filter(pl.col("i") < pl.col("i_o"))
    return pairs["i"].to_numpy(), pairs["i_o"].to_numpy()


def _lsh_among(keys: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (i < j) of the records `idx` sharing an LSH band."""
    found = []
    for band in range(BANDS):
        column = pl.DataFrame({"i": idx, "key": keys[idx, band]})
        pairs = column.join(column, on="key", suffix="_o").filter(pl.col("i") < pl.col("i_o")).select("i", "i_o")
        if pairs.height:
            found.append(pairs)
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = pl.concat(found).unique().sort("i", "i_o")
    return pairs["i"].to_numpy(), pairs["i_o"].to_numpy()


def resolve(listings: pl.DataFrame | pl.LazyFrame, state: pl.DataFrame | None = None, merges: pl.DataFrame | None = None,
            previous_ids: pl.DataFrame | None = None, aliases: pl.DataFrame | None = None,
            previous: dict[str, pl.DataFrame] | None = None, earlier: pl.LazyFrame | None = None,
            abstracts: pl.LazyFrame | None = None,
            write_records: Callable[[pl.DataFrame], object] | None = None) -> Resolution:
    """Papers, sightings, merges, aliases and the next state from every listing.

    `listings` may be lazy (a scan of the table): their abstracts are then never held all at once,
    only those of the first listing of each distinct text (and, of `earlier`, those of the papers
    aggregated again).

    `state` and `merges`: the previous resolution's records and listings (their papers, keys and
    signatures are reused); `previous_ids`: listing_id -> paper_id of an earlier resolution or
    release, for naming only (a resolution without `state` groups every record from scratch);
    `previous`: the previous resolution's `papers` and `sightings`, whose rows are kept for every
    paper the new listings do not reach (only those are aggregated again; they come after the kept
    rows), as frames or lazily (then read once the grouping is done: of the sightings, only the
    kept rows); the papers may be a list of parts, those that keep every row coming first
    (`kept_parts`; `papers` is then lazy, the kept parts scans of them), and a paper made again
    exactly as it was keeps its row where it is;
    `earlier`: the listings the previous resolution was made from, when `listings` are only those
    added since (then `state`, `merges` and `previous` are required): lazily, since only the
    rows of the papers the new listings reach are collected.

    `state` may leave out its records' abstract keys (no `abstract_key` column: 80 % of its bytes,
    800 MB at a million listings), given `abstracts`, the stored records (record_id, abstract_key),
    lazily: only the keys the grouping compares (of records sharing a title with another record of
    the region) are read from it. The state returned then has the abstract keys of the records
    made in this run only.

    `write_records`, if given, is handed the records this run signs (`schema.RECORDS`) as soon as
    they are signed, for the caller to write while the grouping and the papers are worked out; the
    abstract keys are then held only as long as the grouping needs them (at a million listings, 800
    MB), and the state returned has none.

    The grouping does not depend on the order or batching of the listings: the new records and
    every paper they could join or change (the papers holding a record that shares their arXiv id or
    title key, or is a near-duplicate candidate of theirs) form a region that is grouped again from
    scratch, pass by pass in a fixed order; the papers outside it stay as they were."""
    aliases = schema.conform(aliases, schema.ALIASES) if aliases is not None else schema.empty(schema.ALIASES)
    stored = None
    if state is not None and "abstract_key" not in state.columns:
        if abstracts is None:
            raise ValueError("a resolver state without abstract keys needs `abstracts`, the records to read them from")
        stored, state = abstracts, state.with_columns(abstract_key=pl.lit(None, pl.String))
    state = schema.empty(STATE) if state is None else schema.conform(state, STATE)
    merges = schema.empty(schema.MERGES) if merges is None else schema.conform(merges, schema.MERGES)
    resolved_before = merges.select("listing_id", "record_id").join(state.select("record_id"), on="record_id", how="semi")
    listings = schema.conform(listings.lazy().filter(pl.col("title_key").is_not_null() & (pl.col("title_key") != "")),
                              schema.LISTINGS)
    # Matching works on a narrow frame; the wide listings are read again, to make the papers.
    narrow = listings.select("listing_id", "captured_at", "arxiv_id", "title_key", fingerprint(schema.LISTINGS),
                             _TEXT_HASH).collect(engine="streaming")
    keyed, made, texts = with_record_keys(narrow, listings, resolved_before)
    del narrow
    if earlier is not None:  # the earlier listings as the previous resolution keyed them
        keyed = pl.concat([merges.select("listing_id", "record_id", "listing_hash").join(
            previous["sightings"].lazy().select("listing_id", "captured_at").collect(), on="listing_id"), keyed],
            how="diagonal")
    # A record resolved before keeps its keys from the state; only new listings' records are made here.
    kept = state.select("record_id", "arxiv_id", "title_key", "abstract_key").filter(
        pl.col("record_id").is_in(keyed["record_id"].implode()))
    made = made.filter(pl.col("record_id").is_in(kept["record_id"].implode()).not_())
    records = pl.concat([kept, made]).sort("record_id")
    keyed = keyed.select("listing_id", "captured_at", "record_id", "listing_hash", "text_hash")
    known = records.join(state.select("record_id", "paper_id", "rule", "score", "signature"), on="record_id", how="left")
    # Old ids that became aliases resolve to their survivors.
    known = known.join(aliases, left_on="paper_id", right_on="alias_id", how="left").with_columns(
        paper_id=pl.coalesce("paper_id_right", "paper_id")).drop("paper_id_right")
    n = known.height
    new_idx = np.flatnonzero(known["paper_id"].is_null().to_numpy())

    sig = np.zeros((n, NUM_PERM), dtype=np.uint32)
    have_sig = known["signature"].is_not_null().to_numpy()
    if have_sig.any():
        sig[have_sig] = _matrix(known["signature"].filter(pl.Series(have_sig)))
    if (~have_sig).any():
        sig[~have_sig] = signatures(known.filter(pl.Series(~have_sig)))
    known = known.drop("signature")  # (a copy of the stored ones: `sig` holds them now)
    if write_records is not None:
        write_records(known.filter(pl.Series(~have_sig)).select("record_id", "arxiv_id", "title_key", "abstract_key")
                      .with_columns(signature=_binary_rows(sig[~have_sig])))
    keys = band_keys(sig)

    # The region grouped again: the new records and the papers they reach.
    if state.is_empty():
        region = np.arange(n, dtype=np.int64)
    else:
        partners = [_pairs_on(known, new_idx, "arxiv_id")[1], _pairs_on(known, new_idx, "title_key")[1]]
        a, b = _lsh_pairs(keys, new_idx)
        partners.append(b[jaccard(sig, a, b) >= min(NEAR_JACCARD, TITLE_JACCARD)])
        reached = known["paper_id"].gather(np.concatenate(partners)).drop_nulls().unique().implode()
        region = np.union1d(new_idx, np.flatnonzero(known["paper_id"].is_in(reached).to_numpy()))
    in_region = np.zeros(n, dtype=bool)
    in_region[region] = True

    # Records outside the region start in one group per paper, rooted at its smallest index; those
    # inside it start alone.
    groups = known.select("paper_id", "arxiv_id", i=pl.int_range(pl.len(), dtype=pl.Int64)).with_columns(
        first=pl.col("i").min().over("paper_id"), group_arxiv=pl.col("arxiv_id").drop_nulls().first().over("paper_id"))
    alone = pl.Series(in_region) | pl.col("paper_id").is_null()
    groups = groups.select(parent=pl.when(alone).then("i").otherwise("first"),
                           arxiv=pl.when(alone).then("arxiv_id").otherwise("group_arxiv"))
    comps = _Components(groups["parent"].to_numpy(), groups["arxiv"].to_list())
    rule: list[str | None] = [None if r else v for r, v in zip(in_region.tolist(), known["rule"].to_list())]
    score: list[float | None] = [None if r else v for r, v in zip(in_region.tolist(), known["score"].to_list())]

    def attach(a: np.ndarray, b: np.ndarray, name: str, scores: np.ndarray) -> None:
        for i, j, s in zip(a.tolist(), b.tolist(), scores.tolist()):
            if comps.union(i, j):
                for k in (i, j):
                    if rule[k] is None:
                        rule[k], score[k] = name, s

    a, b = _pairs_among(known, region, "arxiv_id")
    attach(a, b, "arxiv_id", np.ones(len(a), dtype=np.float32))

    title_a, title_b = _pairs_among(known, region, "title_key")
    abstract_keys = known["abstract_key"]
    if stored is not None:  # the records from the state (signed before) whose abstracts are compared
        compared = np.union1d(title_a, title_b)
        abstract_keys = _with_stored_keys(abstract_keys, known["record_id"], compared[have_sig[compared]], stored)
    has_abs = abstract_keys.is_not_null().to_numpy()
    both = has_abs[title_a] & has_abs[title_b]
    a, b = title_a[both], title_b[both]
    sim = jaccard(sig, a, b)
    ok = (sim >= TITLE_JACCARD) | _is_prefix(abstract_keys, a, b)
    attach(a[ok], b[ok], "title_key", sim[ok])

    a, b = _lsh_among(keys, region)
    sim = jaccard(sig, a, b)
    ok = sim >= NEAR_JACCARD
    order = np.lexsort((b[ok], a[ok], -sim[ok]))  # the most similar first; ties by index: a fixed order
    attach(a[ok][order], b[ok][order], "near_duplicate", sim[ok][order])

    # A record without an abstract joins the paper of its title only when exactly one paper (with
    # an abstract) has it; decided on the whole region, after every other rule.
    lone = has_abs[title_a] != has_abs[title_b]
    if lone.any():
        bare = np.where(has_abs[title_a], title_b, title_a)[lone]
        other = np.where(has_abs[title_a], title_a, title_b)[lone]
        roots = pl.DataFrame({"bare": bare, "other": other, "root": [comps.find(j) for j in other.tolist()]})
        single = (roots.group_by("bare").agg(pl.col("root").n_unique().alias("n"), pl.col("other").min())
                  .filter(pl.col("n") == 1).sort("bare"))
        for i, j in zip(single["bare"].to_list(), single["other"].to_list()):
            if comps.union(i, j):
                for k in (i, j):
                    if rule[k] is None:
                        rule[k], score[k] = "title_only", 1.0

    assigned = known.select("record_id", "paper_id").with_columns(
        root=pl.Series(comps.roots()), rule=pl.Series(rule, dtype=pl.String), score=pl.Series(score, dtype=pl.Float32))
    if previous_ids is not None and previous_ids.height:  # names only: the grouping is done
        from_before = (keyed.select("record_id", "listing_id")
                       .join(schema.conform(previous_ids, {"listing_id": pl.String, "paper_id": pl.String}), on="listing_id")
                       .join(aliases, left_on="paper_id", right_on="alias_id", how="left")
                       .select("record_id", pl.coalesce("paper_id_right", "paper_id").alias("before"))
                       .group_by("record_id").agg(pl.col("before").min()))
        assigned = assigned.join(from_before, on="record_id", how="left", maintain_order="left").with_columns(
            paper_id=pl.coalesce("paper_id", "before")).drop("before")
    touched = None
    if previous is not None and previous_ids is None:
        vanished = resolved_before.join(keyed, on="listing_id", how="anti").height
        altered = keyed.join(merges.select("listing_id", "listing_hash"), on="listing_id").filter(
            pl.col("listing_hash").ne_missing(pl.col("listing_hash_right"))).height  # no hash yet counts too
        if not vanished and not altered:  # listings only added: the other papers are as before
            fresh = keyed.join(resolved_before, on="listing_id", how="anti").select("record_id").unique()
            touched = pl.concat([pl.Series("root", comps.roots()[region]),
                                 assigned.join(fresh, on="record_id")["root"]]).unique()
    if write_records is not None:  # written: the papers are made without the abstract keys in memory
        del records, made, kept, abstract_keys
        known = known.with_columns(abstract_key=pl.lit(None, pl.String))
    wide = listings if earlier is None else pl.concat([earlier, listings])
    # The grouping is done: the state's signatures are made, and the matrix and its band keys let go
    # of, before the papers are.
    signature = _binary_rows(sig)
    del sig, keys
    return _finish(wide, keyed, known, assigned, signature, aliases, texts, earlier is None,
                   None if touched is None else (previous, merges, touched))


def _latest(column: str, order: pl.Expr) -> pl.Expr:
    """In a group: the value of `column` where `order` is greatest among its non-null values (null
    if it has none). Found by position, not by sorting each group's rows once per column: at a
    million listings the papers' aggregation took 1.0 s instead of 2.4 s."""
    present = pl.col(column).is_not_null()
    return pl.col(column).filter(present).get(order.filter(present).arg_max())


def _unchanged_in_place(made: pl.DataFrame, parts: list[pl.DataFrame | pl.LazyFrame],
                        replaced: pl.Series) -> tuple[pl.DataFrame, list[int], pl.DataFrame]:
    """The papers `made` again that changed (or are new); which `parts` of the previous papers hold
    none of those; and the rows of the other parts but those. A paper made again exactly as it was
    keeps its row where it is, so that a part whose papers a new listing only came near is kept as
    it is. `replaced`: the ids of the papers made again and of those they replace, imploded.

    Parts are read one at a time, and only those that hold a paper of `replaced` are read whole
    (the others, for their ids only): at a million listings, the day's resolve peaked at 3.0-3.1
    GB holding every part at once, at 2.2 GB reading them so."""
    compared = [c for c in schema.PAPERS if c != "paper_id"]
    changed, kept, rest = [], [], [schema.empty(schema.PAPERS)]
    for i, part in enumerate(parts):
        if not part.lazy().select(pl.col("paper_id").is_in(replaced).any()).collect().item():
            kept.append(i)
            continue
        rows = schema.conform(part.lazy().collect(engine="streaming"), schema.PAPERS)
        before = rows.filter(pl.col("paper_id").is_in(replaced))
        same = made.join(before, on="paper_id", suffix="_old").filter(
            pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}_old")) for c in compared))["paper_id"]
        gone = before.filter(~pl.col("paper_id").is_in(same.implode()))["paper_id"]
        changed.append(same)
        if gone.len():
            rest.append(rows.filter(~pl.col("paper_id").is_in(gone.implode())))
        else:
            kept.append(i)
    same = pl.concat([pl.Series("paper_id", [], pl.String), *changed])
    return made.filter(~pl.col("paper_id").is_in(same.implode())), kept, pl.concat(rest)


def _finish(wide: pl.LazyFrame, keyed: pl.DataFrame, known: pl.DataFrame, assigned: pl.DataFrame,
            signature: pl.Series, aliases: pl.DataFrame, texts: pl.DataFrame, hashed: bool,
            incremental=None) -> Resolution:
    """Ids, merges, papers, sightings and state from the components (`assigned.root`). `texts`:
    abstracts already read (text_hash, abstract); `hashed`: `keyed` has every listing's text_hash;
    `signature`: each of `known`'s records' signature, as the state stores it. With `incremental` =
    (previous papers and sightings, previous merges, touched roots), only the touched components
    are worked out again; the rest are the previous rows as they were."""
    listings = keyed.join(assigned.select("record_id", "root", "rule", "score"), on="record_id")
    if incremental is not None:
        previous, previous_merges, touched = incremental
        listings = listings.filter(pl.col("root").is_in(touched.implode()))
    # Per component: the old ids it holds (earliest first sighting survives) or a new id.
    seen = listings.group_by("root").agg(
        first_listing=pl.col("listing_id").sort_by(["captured_at", "listing_id"]).first())
    old = (listings.join(assigned.select("record_id", pl.col("paper_id").alias("old")), on="record_id")
           .filter(pl.col("old").is_not_null())
           .group_by("root", "old").agg(pl.col("captured_at").min().alias("since"),
                                        pl.col("listing_id").min().alias("first"))
           # a paper split in two keeps its id in the part that holds its first sighting
           .sort(["old", "since", "first"]).unique("old", keep="first")
           .sort(["root", "since", "old"]))
    survivors = old.group_by("root", maintain_order=True).agg(pl.col("old").first().alias("survivor"),
                                                              pl.col("old").alias("olds"))
    ids = (seen.join(survivors, on="root", how="left")
           .with_columns(paper_id=pl.coalesce("survivor", pl.lit("p") + short_hash(pl.col("first_listing")))))
    new_aliases = (ids.filter(pl.col("olds").is_not_null()).explode("olds")
                   .filter(pl.col("olds") != pl.col("paper_id"))
                   .select(alias_id="olds", paper_id="paper_id"))
    all_aliases = (pl.concat([aliases, schema.conform(new_aliases, schema.ALIASES)])
                   .join(new_aliases.select(pl.col("alias_id").alias("paper_id"), pl.col("paper_id").alias("to")),
                         on="paper_id", how="left")
                   .with_columns(paper_id=pl.coalesce("to", "paper_id")).drop("to").unique("alias_id")
                   # a paper that had joined another and is apart again gets back the id it had (its
                   # first listing's): that id names a paper again, not an alias
                   .filter(~pl.col("alias_id").is_in(ids["paper_id"].implode())).sort("alias_id"))

    listings = listings.join(ids.select("root", "paper_id"), on="root").sort(["captured_at", "listing_id"])
    merges = listings.with_columns(
        rule=pl.when(pl.col("listing_id") == pl.col("listing_id").first().over("paper_id")).then(pl.lit("first"))
        .when(pl.col("record_id").cum_count().over("paper_id", "record_id") > 1).then(pl.lit("exact"))
        .otherwise(pl.col("rule")),
    ).with_columns(score=pl.when(pl.col("rule").is_in(["first", "exact"])).then(pl.lit(1.0)).otherwise(pl.col("score")))
    if incremental is not None:  # (with nothing to aggregate again, the earlier listings are not scanned)
        wide = wide.filter(pl.col("listing_id").is_in(listings["listing_id"].implode())) if listings.height else wide.clear()
    # The wide listings are neither joined nor sorted (each would copy them): their paper and their
    # place in capture order come as columns aligned to their rows. Their abstracts are left out
    # (80 % of their bytes): each paper's is named by its hash, and taken from the texts keyed in
    # this run (all of them, unless earlier listings are among these); only the others are read.
    rest = wide.select(pl.exclude("abstract"), *([] if hashed else [_TEXT_HASH])).collect(engine="streaming")
    aligned = rest.select("listing_id").join(
        listings.select("listing_id", "paper_id", *(["text_hash"] if hashed else [])).with_row_index("seq"),
        on="listing_id", how="left", maintain_order="left")
    ordered = rest.lazy().with_columns(
        aligned.select(pl.exclude("listing_id")),
        basis_rank=pl.col("published_on_basis").replace_strict(_BASIS_RANK, default=-1))
    papers = ordered.group_by("paper_id").agg(
        *[_latest("text_hash" if c == "abstract" else c, pl.col("seq")) for c in schema.PAPERS
          if c in schema.LISTINGS and c not in _OWN_POLICY],
        _latest("published_on", pl.col("basis_rank").cast(pl.Int64) * (1 << 32) + pl.col("seq")),
        pl.col("daily_date").min(),
        pl.col("captured_at").min().alias("first_seen_at"),
        pl.col("captured_at").max().alias("last_seen_at"),
        pl.len().cast(pl.Int32).alias("n_sightings"),
        pl.col("source").unique().sort().alias("sources"),
    )
    papers, sightings = pl.collect_all([papers, ordered.select(list(schema.SIGHTINGS))])
    del rest, ordered
    missing = papers.select(pl.col("text_hash").drop_nulls()).join(texts, on="text_hash", how="anti")["text_hash"]
    if missing.len():
        texts = pl.concat([texts, wide.select(_TEXT_HASH, "abstract").filter(pl.col("text_hash").is_in(missing.implode()))
                           .unique("text_hash").collect(engine="streaming")])
    papers = papers.join(texts, on="text_hash", how="left")
    papers = schema.conform(papers, schema.PAPERS).sort(["published_on", "paper_id"], nulls_last=True)
    sightings = schema.conform(sightings, schema.SIGHTINGS).sort(["paper_id", "captured_at", "listing_id"])
    merges = schema.conform(merges, schema.MERGES).sort("listing_id")
    # Every record's paper: its component's id, or (untouched) the id it had.
    record_paper = assigned.select("record_id", "paper_id").join(
        listings.select("record_id", pl.col("paper_id").alias("now")).unique("record_id"),
        on="record_id", how="left", maintain_order="left").select("record_id", paper_id=pl.coalesce("now", "paper_id"))
    kept_parts: list[int] = []
    written = papers
    if incremental is not None:
        replaced = pl.concat([listings["paper_id"], assigned.join(listings.select("record_id").unique(),
                                                                   on="record_id")["paper_id"]]).drop_nulls().implode()
        # (read here, once the grouping has let go of its memory, and a part at a time)
        given = previous["papers"]
        parts = given if isinstance(given, list) else [given]
        papers, kept_parts, rest = _unchanged_in_place(papers, parts, replaced)
        written = pl.concat([rest, papers])
        kept_papers = [schema.conform(parts[i].lazy(), schema.PAPERS) for i in kept_parts]
        papers = (pl.concat([*kept_papers, written.lazy()]) if isinstance(given, list)
                  else pl.concat([*(part.collect() for part in kept_papers), written]))
        kept_sightings = previous["sightings"].lazy().filter(~pl.col("paper_id").is_in(replaced))
        sightings = pl.concat([schema.conform(kept_sightings.collect(engine="streaming"), schema.SIGHTINGS), sightings])
        merges = pl.concat([previous_merges.filter(~pl.col("listing_id").is_in(merges["listing_id"].implode())),
                            merges])
    # `known` is in record_id order already: the joins keep it, so the state needs no sorted copy.
    state = (known.select("record_id", "arxiv_id", "title_key", "abstract_key")
             .with_columns(signature=signature)
             .join(record_paper, on="record_id", maintain_order="left")
             .join(assigned.select("record_id", "rule", "score"), on="record_id", maintain_order="left"))
    return Resolution(papers=papers, sightings=sightings, merges=merges, aliases=all_aliases,
                      state=schema.conform(state, STATE), kept_parts=kept_parts,
                      written=written)
