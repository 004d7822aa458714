"""Resolution quality on the generated, labelled evaluation set (bench/corpus.py), against the targets."""

from bench.corpus import evalset
from bench.dedup_eval import pair_scores, run_ours


def test_precision_and_recall_on_the_evaluation_set():
    listings = evalset(seed=5, n_papers=800)
    assert listings["label"].n_unique() > 800  # hard negatives are papers of their own
    predicted, _ = run_ours(listings)
    scores = pair_scores(listings["label"], predicted)
    assert scores["precision"] >= 0.999 and scores["recall"] >= 0.99, scores


def test_the_evaluation_set_is_repeatable_from_its_seed():
    assert evalset(seed=9, n_papers=200).equals(evalset(seed=9, n_papers=200))
    assert not evalset(seed=9, n_papers=200).equals(evalset(seed=10, n_papers=200))
