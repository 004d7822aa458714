import datetime as dt

import polars as pl

from pipeline import dedup, schema
from pipeline.parse import to_frames

UTC = dt.timezone.utc
LONG = ("We propose a method for learning sparse widgets from dense data. Our approach combines gradient "
        "estimates with a new regulariser and scales to millions of examples. Experiments on four benchmarks "
        "show consistent gains over strong baselines, and ablations explain where the gains come from.")
OTHER = ("Large language models memorise their training data. We measure how much, across scales and domains, "
         "and find that duplication in the corpus drives most of it; deduplicating cuts memorisation tenfold.")


def listing(n, title, captured=(2026, 1, 1), **fields):
    return {"listing_id": f"c{n:03d}:0", "capture_id": f"c{n:03d}", "position": 0, "title": title,
            "captured_at": dt.datetime(*captured, tzinfo=UTC), "source": "text_capture", **fields}


def resolve(rows, **kw):
    return dedup.resolve(to_frames(rows, [])[0], **kw)


def paper_of(res, n):
    return res.merges.filter(pl.col("listing_id") == f"c{n:03d}:0")["paper_id"].item()


def test_merge_policy_per_column():
    rows = [
        listing(1, "Widgets: A Study", (2026, 1, 1), abstract=LONG, upvotes=3, author_count=2,
                published_on=dt.date(2025, 12, 1), published_on_basis="explicit"),
        listing(2, "widgets - a study", (2026, 1, 5), abstract=LONG, upvotes=None,
                arxiv_id="2501.01230", published_on=dt.date(2025, 12, 2), published_on_basis="year_inferred"),
        listing(3, "WIDGETS: a study", (2026, 1, 3), abstract=None, upvotes=7, organization="org",
                published_on=dt.date(2025, 12, 1), published_on_basis="explicit"),
        listing(4, "Another paper", (2026, 1, 2), abstract=OTHER, author_count=1),
    ]
    res = resolve(rows)
    assert res.papers.height == 2 and res.sightings.height == 4
    p = res.papers.filter(pl.col("n_sightings") == 3).row(0, named=True)
    assert p["title"] == "widgets - a study"          # latest sighting's
    assert p["abstract"] == LONG
    assert p["arxiv_id"] == "2501.01230"              # from any sighting that has it
    assert p["upvotes"] == 7                          # latest capture that showed upvotes
    assert p["published_on"] == dt.date(2025, 12, 1)  # an explicit year beats an inferred one
    assert p["author_count"] == 2 and p["organization"] == "org"
    assert (p["first_seen_at"], p["last_seen_at"]) == (dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 1, 5, tzinfo=UTC))
    history = res.sightings.filter(pl.col("paper_id") == p["paper_id"]).sort("captured_at")["upvotes"].to_list()
    assert history == [3, 7, None]
    rules = dict(res.merges.select("listing_id", "rule").iter_rows())
    assert rules["c001:0"] == "first" and rules["c002:0"] == "title_key" and rules["c003:0"] == "title_only"
    assert res.papers.schema == pl.Schema(schema.PAPERS)


def test_same_title_different_abstract_stays_apart_but_truncation_merges():
    res = resolve([
        listing(1, "Attention Is All You Need", abstract=LONG),
        listing(2, "Attention is all you need", abstract=OTHER),
        listing(3, "Attention Is All You Need!", abstract=LONG[:120] + "..."),
        listing(4, "Attention Is All You Need", abstract=None),  # ambiguous: two papers have this title
    ])
    assert paper_of(res, 1) != paper_of(res, 2)
    assert paper_of(res, 3) == paper_of(res, 1)
    assert paper_of(res, 4) not in (paper_of(res, 1), paper_of(res, 2))


def test_near_duplicate_with_revised_title_and_latex():
    res = resolve([
        listing(1, "Sparse Widgets for Dense Retrieval", abstract=LONG.replace("four", "4")),
        listing(2, "Towards Sparse Widgets for Dense Retrieval", abstract=LONG.replace("regulariser", "regulariser \\%")),
    ])
    assert paper_of(res, 1) == paper_of(res, 2)
    (rule, score) = res.merges.filter(pl.col("listing_id") == "c002:0").select("rule", "score").row(0)
    assert rule == "near_duplicate" and score >= dedup.NEAR_JACCARD


def test_different_arxiv_ids_never_merge():
    res = resolve([listing(1, "Same", abstract=LONG, arxiv_id="2501.00001"),
                   listing(2, "Same", abstract=LONG, arxiv_id="2501.00002"),
                   listing(3, "Totally different title", abstract=OTHER, arxiv_id="2501.00001")])
    assert paper_of(res, 1) != paper_of(res, 2)
    assert paper_of(res, 3) == paper_of(res, 1)  # the arXiv id pass


def test_ids_are_stable_across_runs_and_new_papers_do_not_move_old_ids():
    first = resolve([listing(1, "Alpha", abstract=LONG), listing(2, "Beta", abstract=OTHER)])
    ids = {n: paper_of(first, n) for n in (1, 2)}
    later = [listing(1, "Alpha", abstract=LONG), listing(2, "Beta", abstract=OTHER),
             listing(3, "Alpha: revised", (2025, 6, 1), abstract=LONG, arxiv_id="2506.00001"),
             listing(4, "Gamma", abstract="Something else entirely, a third paper about gamma rays and more.")]
    for kw in ({"state": first.state, "merges": first.merges, "aliases": first.aliases},
               {"state": first.state, "merges": first.merges, "aliases": first.aliases,
                "previous": {"papers": first.papers, "sightings": first.sightings}},
               {"state": first.state, "aliases": first.aliases},
               {"previous_ids": first.sightings.select("listing_id", "paper_id")}):
        again = resolve(later, **kw)
        assert {n: paper_of(again, n) for n in (1, 2)} == ids
        assert paper_of(again, 3) == ids[1]  # an earlier sighting with an arXiv id joins, the id stays
        assert again.papers.height == 3


def test_two_papers_that_turn_out_one_keep_the_older_id_and_alias_the_other():
    words = LONG.split()
    first = resolve([listing(1, "Widget Learning", (2026, 1, 1), abstract=" ".join(words[:20])),
                     listing(2, "Widget Learning at Scale", (2026, 1, 2), abstract=LONG)])
    a, b = paper_of(first, 1), paper_of(first, 2)
    assert a != b
    for previous in (None, {"papers": first.papers, "sightings": first.sightings}):
        bridged = resolve([listing(1, "Widget Learning", (2026, 1, 1), abstract=" ".join(words[:20])),
                           listing(2, "Widget Learning at Scale", (2026, 1, 2), abstract=LONG),
                           listing(3, "Widget Learning", (2026, 1, 3), abstract=LONG)],
                          state=first.state, merges=first.merges, aliases=first.aliases, previous=previous)
        assert {paper_of(bridged, n) for n in (1, 2, 3)} == {a}
        assert bridged.aliases.rows() == [(b, a)]
        assert bridged.papers["paper_id"].to_list() == [a] and bridged.papers["n_sightings"].to_list() == [3]


def test_incremental_resolution_equals_resolving_everything(tmp_path):
    import random

    r = random.Random(3)
    vocab = sorted(set((LONG + " " + OTHER).replace(".", "").replace(",", "").split()))
    abstracts = [" ".join(r.choices(vocab, k=40)) for _ in range(30)]
    rows = [listing(i, f"Paper number {i} on widgets", abstract=abstracts[i]) for i in range(30)]
    rows += [listing(40, "Paper number 3 on widgets", (2026, 2, 1), abstract=abstracts[3][:150] + "..."),
             listing(41, "Paper Number 25 on Widgets", (2026, 2, 2), abstract=abstracts[25])]
    full = resolve(rows)
    step = resolve(rows[:20])
    incremental = resolve(rows, state=step.state, merges=step.merges, aliases=step.aliases)
    assert full.papers.height == 30
    assert incremental.papers.equals(full.papers)
    assert incremental.merges.select("listing_id", "paper_id").equals(full.merges.select("listing_id", "paper_id"))
    # Reusing the previous papers and sightings, only the papers new listings reach are aggregated
    # again: the same tables, in another row order.
    reused = resolve(rows, state=step.state, merges=step.merges, aliases=step.aliases,
                     previous={"papers": step.papers, "sightings": step.sightings})
    for name, key in (("papers", "paper_id"), ("sightings", "listing_id"), ("merges", "listing_id")):
        assert getattr(reused, name).sort(key).equals(getattr(full, name).sort(key)), name
    assert reused.state.equals(incremental.state)
    # Handed only the listings added since, with the earlier ones to read from: the same tables.
    appended = resolve(rows[20:], state=step.state, merges=step.merges, aliases=step.aliases,
                       previous={"papers": step.papers, "sightings": step.sightings},
                       earlier=to_frames(rows[:20], [])[0].lazy())
    for name in ("papers", "sightings", "merges", "aliases", "state"):
        assert getattr(appended, name).equals(getattr(reused, name)), name
    # The previous tables handed over as scans of their files, as the resolve stage hands them (read
    # only for the rows kept): the same tables.
    for name in ("papers", "sightings"):
        getattr(step, name).write_parquet(tmp_path / f"{name}.parquet")
    scanned = resolve(rows[20:], state=step.state, merges=step.merges, aliases=step.aliases,
                      previous={name: pl.scan_parquet(tmp_path / f"{name}.parquet") for name in ("papers", "sightings")},
                      earlier=to_frames(rows[:20], [])[0].lazy())
    for name in ("papers", "sightings", "merges", "aliases", "state"):
        assert getattr(scanned, name).equals(getattr(appended, name)), name
    # A listing parsed again with another value (a parser fix) is noticed: everything is aggregated again.
    reparsed = [{**row, "upvotes": 77} if row["listing_id"] == "c005:0" else row for row in rows]
    again = resolve(reparsed, state=reused.state, merges=reused.merges, aliases=reused.aliases,
                    previous={"papers": reused.papers, "sightings": reused.sightings})
    assert again.papers.filter(pl.col("upvotes") == 77).height == 1
    assert again.papers.equals(resolve(reparsed).papers)


def test_previous_papers_in_parts_are_read_whole_only_where_a_new_listing_reaches_them(tmp_path):
    """The resolve stage hands the previous papers as scans of their parts: a part that holds no
    paper the new listings reach is read for its ids only and stays a scan in the papers returned;
    the papers are those the frames in memory give."""
    import random

    r = random.Random(5)
    vocab = sorted(set((LONG + " " + OTHER).replace(".", "").replace(",", "").split()))
    abstracts = [" ".join(r.choices(vocab, k=40)) for _ in range(24)]
    rows = [listing(i, f"Paper number {i} on widgets", abstract=abstracts[i]) for i in range(20)]
    step = resolve(rows)
    assert step.papers.height == 20
    for i in range(4):
        step.papers.slice(5 * i, 5).write_parquet(tmp_path / f"{i}.parquet")
    reached = paper_of(step, 7)
    holder = step.papers["paper_id"].to_list().index(reached) // 5
    read_whole = []

    def part(i):  # a scan that notes each time its abstracts are read
        return pl.scan_parquet(tmp_path / f"{i}.parquet").with_columns(pl.col("abstract").map_batches(
            lambda s: read_whole.append(i) or s, return_dtype=pl.String))

    # two new papers, and paper 7 listed again with more upvotes
    more = [listing(20 + k, f"A new paper {k} on gadgets", (2026, 2, 1), abstract=abstracts[20 + k]) for k in range(2)]
    more.append(listing(30, "Paper number 7 on widgets", (2026, 2, 2), abstract=abstracts[7], upvotes=9))
    state = {"state": step.state, "merges": step.merges, "aliases": step.aliases}
    held = resolve(rows + more, **state, previous={"papers": step.papers, "sightings": step.sightings})
    parted = resolve(rows + more, **state, previous={"papers": [part(i) for i in range(4)], "sightings": step.sightings})
    assert read_whole == [holder]
    assert parted.kept_parts == [i for i in range(4) if i != holder]
    assert isinstance(parted.papers, pl.LazyFrame)
    papers = parted.papers.collect()
    assert papers.sort("paper_id").equals(held.papers.sort("paper_id"))
    assert papers.filter(pl.col("paper_id") == reached)["upvotes"].to_list() == [9]
    # the rows after the kept parts': the reached part's other papers, then the papers made again
    assert parted.written.equals(papers.slice(15))
    assert sorted(parted.written["paper_id"]) == sorted(
        [*step.papers.slice(5 * holder, 5)["paper_id"], paper_of(parted, 20), paper_of(parted, 21)])


def test_the_documented_thresholds_are_the_ones_used():
    doc = dedup.__doc__
    assert f"at least {dedup.TITLE_JACCARD}" in doc and f"at least {dedup.NEAR_JACCARD}," in doc
    assert f"{dedup.NUM_PERM} permutations" in doc and f"first {dedup.SHINGLE_WORDS} words" in doc
    assert f"{dedup.BANDS} bands of {dedup.ROWS}" in doc


def grouping(res) -> set[frozenset[str]]:
    """The papers as sets of listing ids: what must not depend on order (ids may)."""
    return {frozenset(g) for g in res.merges.group_by("paper_id").agg("listing_id")["listing_id"].to_list()}


def resolve_in_batches(rows, batches, appended=False, stored=False):
    """Each batch resolved on top of the resolution before; with `appended`, handed only the new
    batch, the earlier listings to read from (as the stage does when listings were only added);
    with `stored`, handed the state without its abstract keys and every record signed so far to
    read them from (as the stage keeps them: each run adds the records it signed)."""
    res, seen, records = None, [], schema.empty(schema.RECORDS)
    for batch in batches:
        kw = {} if res is None else {"state": res.state, "merges": res.merges, "aliases": res.aliases,
                                     "previous": {"papers": res.papers, "sightings": res.sightings}}
        if stored and res is not None:
            kw.update(state=res.state.drop("abstract_key"), abstracts=records.lazy())
        if appended and res is not None:
            res = resolve(batch, earlier=to_frames(seen, [])[0].lazy(), **kw)
        else:
            res = resolve(seen + batch, **kw)
        records = pl.concat([records, res.state.select(list(schema.RECORDS)).join(records, on="record_id", how="anti")])
        seen += batch
    return res


def test_a_paper_apart_again_has_its_id_back_and_stays_apart():
    first = listing(1, "Widgets Revisited, Again", (2026, 1, 1), abstract=LONG, arxiv_id="2501.00001")
    bare = listing(2, "Widgets revisited", (2026, 1, 2))
    same = listing(3, "Widgets Revisited", (2026, 1, 3), abstract=LONG, arxiv_id="2501.00001")
    other = listing(4, "WIDGETS REVISITED", (2026, 1, 4), abstract=OTHER)  # a second paper of that title
    seen_again = listing(5, "Widgets Revisited", (2026, 1, 5), abstract=LONG, arxiv_id="2501.00001")
    rows = [first, bare, same, other, seen_again]
    bare_id = paper_of(resolve([first, bare]), 2)
    joined = resolve_in_batches(rows, [[first, bare], [same]])
    assert paper_of(joined, 2) == paper_of(joined, 1) and bare_id in joined.aliases["alias_id"].to_list()
    res = resolve_in_batches(rows, [[first, bare], [same], [other], [seen_again]])
    assert grouping(res) == grouping(resolve(rows)) == {frozenset({"c001:0", "c003:0", "c005:0"}),
                                                       frozenset({"c002:0"}), frozenset({"c004:0"})}
    assert paper_of(res, 2) == bare_id and bare_id not in res.aliases["alias_id"].to_list()


def test_title_only_does_not_depend_on_the_order():
    a = listing(1, "Widgets Revisited", (2026, 1, 1), abstract=LONG)
    bare = listing(2, "Widgets revisited", (2026, 1, 2))  # no abstract: which paper is it?
    b = listing(3, "WIDGETS REVISITED", (2026, 1, 3), abstract=OTHER)  # another paper, same title
    together = resolve([a, bare, b])
    assert len(grouping(together)) == 3  # two papers have that title: the bare listing stays alone
    assert grouping(resolve_in_batches([a, bare, b], [[a], [bare], [b]])) == grouping(together)
    # and with one paper of that title, the bare listing joins it, whichever came first
    assert grouping(resolve_in_batches([bare, a], [[bare], [a]])) == {frozenset({"c001:0", "c002:0"})}


def test_every_merge_names_its_rule():
    bare = listing(1, "Widgets Revisited", (2026, 1, 1))  # first seen without an abstract
    a = listing(2, "Widgets revisited", (2026, 1, 2), abstract=LONG)
    for res in (resolve([bare, a]), resolve_in_batches([bare, a], [[bare], [a]])):
        assert res.merges["rule"].null_count() == 0
        assert dict(res.merges.select("listing_id", "rule").iter_rows()) == {"c001:0": "first", "c002:0": "title_only"}


def test_the_listing_fingerprint_is_xxhash64_of_the_row_text():
    import xxhash

    frame = pl.DataFrame({"a": ["x", None], "b": [["p", "q"], None], "c": [1, 2]})
    expected = [xxhash.xxh64_intdigest("x\x1fp\x1eq\x1f1".encode()), xxhash.xxh64_intdigest("\x00\x1f\x00\x1f2".encode())]
    assert frame.select(dedup.fingerprint(frame.schema)).to_series().to_list() == expected


def _variants():
    """Listings of a few papers in the shapes that make resolution hard: one title for two papers,
    bare listings, truncated abstracts, arXiv versions, retitled near-duplicates, a listing seen
    again."""
    words = LONG.split()
    return [
        listing(1, "Widgets Revisited", abstract=LONG, arxiv_id="2501.00001"),
        listing(2, "Widgets revisited"),
        listing(3, "WIDGETS REVISITED", abstract=OTHER),
        listing(4, "Widgets Revisited", abstract=LONG[:150] + "..."),
        listing(5, "Widgets Revisited, Again", abstract=LONG, arxiv_id="2501.00001"),
        listing(6, "Memorisation at scale", abstract=OTHER, arxiv_id="2502.00002"),
        listing(7, "Memorisation at Scale: A Study", abstract=OTHER),
        listing(8, "Sparse widgets from dense data", abstract=" ".join(words[:45])),
        listing(9, "Sparse Widgets From Dense Data", abstract=" ".join(words[:45] + ["Extended", "version."])),
        listing(10, "Memorisation at scale"),
        listing(11, "A lone paper", abstract="Nothing else is like it: " + " ".join(reversed(words))),
        listing(12, "Widgets Revisited", abstract=LONG, arxiv_id="2501.00001"),  # listing 1 seen again
    ]


def test_random_orders_and_batchings_give_the_same_papers():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    rows = _variants()
    expected = grouping(resolve(rows))

    @settings(max_examples=25, deadline=None)
    @given(st.permutations(rows), st.lists(st.integers(1, len(rows) - 1), max_size=4, unique=True))
    def check(order, cuts):
        cuts = sorted(cuts)
        batches = [order[i:j] for i, j in zip([0, *cuts], [*cuts, len(order)])]
        # each batch arrives later than the one before, as captures do
        dated = [[{**row, "captured_at": dt.datetime(2026, 1, 1 + k, tzinfo=UTC) + dt.timedelta(minutes=m)}
                  for m, row in enumerate(batch)] for k, batch in enumerate(batches)]
        flat = [row for batch in dated for row in batch]
        batched = resolve_in_batches(flat, dated)
        assert grouping(batched) == grouping(resolve(flat)) == expected
        appended = resolve_in_batches(flat, dated, appended=True)
        for name in ("papers", "sightings", "merges", "aliases", "state"):
            assert getattr(appended, name).equals(getattr(batched, name)), name
        # The abstract keys read from the stored records, only where compared: the same tables.
        stored = resolve_in_batches(flat, dated, appended=True, stored=True)
        for name in ("papers", "sightings", "merges", "aliases"):
            assert getattr(stored, name).equals(getattr(batched, name)), name
        assert stored.state.drop("abstract_key").equals(batched.state.drop("abstract_key"))

    check()


def test_resolving_a_scan_of_parquet_parts_equals_resolving_the_frame(tmp_path):
    """Listings scanned from Parquet parts in many row groups (resolution reads their abstracts by
    position, in passes of their own) give the tables the same listings give in memory; each paper's
    abstract is its latest sighting's with one."""
    rows = [{**row, "listing_id": f"{row['listing_id']}#{k}", "abstract": row.get("abstract") if k % 3 else None,
             "captured_at": dt.datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(hours=k, minutes=n)}
            for k in range(40) for n, row in enumerate(_variants())]
    frame = to_frames(rows, [])[0]
    for i, start in enumerate(range(0, frame.height, 160)):
        frame.slice(start, 160).write_parquet(tmp_path / f"{i}.parquet", row_group_size=7)
    scanned = dedup.resolve(pl.scan_parquet(sorted(tmp_path.glob("*.parquet"))))
    held = dedup.resolve(frame)
    for name in ("papers", "sightings", "merges", "aliases", "state"):
        assert getattr(scanned, name).equals(getattr(held, name)), name
    firsts = held.merges.with_columns(pl.col("listing_id").str.split("#").list.first().alias("base"))
    for paper in held.papers.iter_rows(named=True):
        bases = set(firsts.filter(pl.col("paper_id") == paper["paper_id"])["base"])
        last = max((row for row in rows if row["listing_id"].split("#")[0] in bases and row.get("abstract")),
                   key=lambda row: row["captured_at"], default=None)
        assert paper["abstract"] == (last["abstract"] if last else None)


def test_signatures_signed_in_threads_are_those_signed_in_one_chunk(monkeypatch):
    """Records signed two at a time on every core: each row is its own record's signature, in order;
    the same texts sign alike, and texts with no shingle in common share almost no values."""
    import numpy as np

    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    texts = [" ".join(words[i:] + words[:i]) for i in range(5)]
    records = pl.DataFrame({"title_key": [f"title {i % 5}" for i in range(7)],
                            "abstract_key": [texts[i % 5] for i in range(7)]})
    whole = dedup.signatures(records)
    alone = np.concatenate([dedup.signatures(records.slice(i, 1)) for i in range(records.height)])
    assert np.array_equal(alone, whole)  # a matrix of one row cannot put a value in another's row
    monkeypatch.setattr(dedup, "SIGN_CHUNK", 2)
    chunked = dedup.signatures(records)
    assert chunked.shape == (7, dedup.NUM_PERM) and np.array_equal(chunked, whole)
    assert np.array_equal(chunked[0], chunked[5]) and np.array_equal(chunked[1], chunked[6])
    assert not np.array_equal(chunked[0], chunked[1])
    unrelated = dedup.signatures(pl.DataFrame({"title_key": ["one two three"], "abstract_key": ["four five six"]}))
    assert (unrelated[0] == chunked[0]).mean() < 0.1


def test_a_signature_reads_the_title_and_the_abstracts_first_words_only():
    """Shingles run over every word of the title and the first SHINGLE_WORDS of the abstract: a change
    past them leaves the signature as it was, a change in the last word read does not."""
    import numpy as np

    n = dedup.SHINGLE_WORDS
    abstract = [f"w{i}" for i in range(n + 40)]
    title = "a long title of seven words"

    def with_word(position: int, word: str) -> str:
        return " ".join(abstract[:position] + [word] + abstract[position + 1:])

    records = pl.DataFrame({
        "title_key": [title, title, title, title.replace("seven", "eight"), title],
        "abstract_key": [" ".join(abstract), with_word(n, "changed"), with_word(n - 1, "changed"),
                         " ".join(abstract), None]})
    sig = dedup.signatures(records)
    assert np.array_equal(sig[0], sig[1])  # the word after the last one read
    assert not np.array_equal(sig[0], sig[2])  # the last word read
    assert not np.array_equal(sig[0], sig[3])  # the title's last word
    title_only = dedup.signatures(pl.DataFrame({"title_key": [title], "abstract_key": [""]}))
    assert np.array_equal(sig[4], title_only[0]) and not np.array_equal(sig[4], sig[0])
