"""Precision and recall of resolution on the labelled evaluation set, beside datasketch's MinHashLSH
(with its defaults) as the reference, and the threshold sweep that chose NEAR_JACCARD.

    python -m bench.dedup_eval [--seed 7] [--papers 2000] [--sweep]
"""

from __future__ import annotations

import argparse
import json
import time

import polars as pl

from bench.corpus import evalset
from pipeline import dedup


def pair_scores(labels: pl.Series, predicted: pl.Series) -> dict:
    """Pairwise precision and recall: a pair of listings is positive when both are one paper."""
    frame = pl.DataFrame({"t": labels, "p": predicted})

    def pairs(*cols):
        n = frame.group_by(*cols).len()["len"].cast(pl.Int64)
        return int((n * (n - 1) // 2).sum())

    true_pairs, predicted_pairs, both = pairs("t"), pairs("p"), pairs("t", "p")
    return {"precision": both / predicted_pairs if predicted_pairs else 1.0,
            "recall": both / true_pairs if true_pairs else 1.0,
            "true_pairs": true_pairs, "predicted_pairs": predicted_pairs}


def run_ours(listings: pl.DataFrame) -> tuple[pl.Series, float]:
    start = time.perf_counter()
    resolution = dedup.resolve(listings)
    elapsed = time.perf_counter() - start
    ids = listings.select("listing_id").join(resolution.merges.select("listing_id", "paper_id"), on="listing_id", how="left")
    return ids["paper_id"], elapsed


def run_datasketch(listings: pl.DataFrame) -> tuple[pl.Series, float]:
    """datasketch MinHashLSH with its defaults (threshold 0.9, 128 permutations) over the same word
    3-shingles of normalized title and abstract; clusters are the connected components of matches."""
    from datasketch import MinHash, MinHashLSH

    from pipeline.normalize import key_expr

    texts = listings.select(pl.concat_str([pl.col("title_key"), key_expr("abstract").fill_null("")],
                                          separator=" ")).to_series().to_list()
    start = time.perf_counter()
    lsh = MinHashLSH()
    hashes = []
    for i, text in enumerate(texts):
        words = text.split()
        shingles = {" ".join(words[j:j + 3]) for j in range(max(1, len(words) - 2))}
        m = MinHash()
        m.update_batch([s.encode() for s in shingles])
        lsh.insert(str(i), m)
        hashes.append(m)
    parent = list(range(len(texts)))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, m in enumerate(hashes):
        for j in lsh.query(m):
            a, b = find(i), find(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    elapsed = time.perf_counter() - start
    return pl.Series([find(i) for i in range(len(texts))]), elapsed


def evaluate(seed: int = 7, papers: int = 2000) -> dict:
    listings = evalset(seed=seed, n_papers=papers)
    ours, t_ours = run_ours(listings)
    theirs, t_theirs = run_datasketch(listings)
    return {
        "seed": seed, "listings": listings.height, "papers": listings["label"].n_unique(),
        "ours": {**pair_scores(listings["label"], ours), "seconds": round(t_ours, 3),
                 "near_jaccard": dedup.NEAR_JACCARD, "title_jaccard": dedup.TITLE_JACCARD},
        "datasketch_minhashlsh_defaults": {**pair_scores(listings["label"], theirs), "seconds": round(t_theirs, 3)},
    }


def sweep(seed: int = 7, papers: int = 2000) -> list[dict]:
    listings = evalset(seed=seed, n_papers=papers)
    out = []
    saved = dedup.NEAR_JACCARD
    try:
        for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
            dedup.NEAR_JACCARD = t
            ours, _ = run_ours(listings)
            out.append({"near_jaccard": t, **pair_scores(listings["label"], ours)})
    finally:
        dedup.NEAR_JACCARD = saved
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--papers", type=int, default=2000)
    parser.add_argument("--sweep", action="store_true")
    args = parser.parse_args()
    result = sweep(args.seed, args.papers) if args.sweep else evaluate(args.seed, args.papers)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
