import polars as pl
import pytest

from pipeline.normalize import clean_text, keys, title_key


@pytest.mark.parametrize("a, b", [
    ("Fr\\'echet Inception Distance", "Fréchet inception distance"),
    ("Fr\\'{e}chet Inception Distance", "FRÉCHET INCEPTION DISTANCE"),
    ("Self-Supervised Learning", "self supervised  learning"),
    ("Scaling to 100\\% Recall", "Scaling to 100% recall"),
    ("ﬁne-tuning ＬＬＭs", "fine tuning LLMs"),
    ("Gra\\v{c}anin's method", "Gračanin’s Method"),
    ("  Title\nwith a hard break ", "Title with a hard break"),
])
def test_same_key(a, b):
    assert title_key(a) == title_key(b)


@pytest.mark.parametrize("a, b", [
    ("Attention Is All You Need", "Attention Is Not All You Need"),
    ("GPT-4 Technical Report", "GPT-3 Technical Report"),
    ("学习", "学"),
])
def test_different_key(a, b):
    assert title_key(a) != title_key(b)


@pytest.mark.parametrize("raw, clean", [
    (" Plain text, single spaced. ", "Plain text, single spaced."),
    ("two  spaces", "two spaces"),
    ("a line\nbreak\r\nand\ttab", "a line break and tab"),
    ("bell\x07 inside", "bell inside"),
    ("   ", None),
    ("", None),
    ("x", "x"),
])
def test_clean_text_on_ascii(raw, clean):
    assert clean_text(raw) == clean


def test_clean_text_collapses_every_whitespace_run_and_nulls_empty():
    assert clean_text(" a\n\n b\t\u00a0c\r\n") == "a b c"
    assert clean_text("  \n ") is None
    assert clean_text(None) is None
    assert clean_text("$\\alpha$-Net: “quotes” https://x.y/z") == "$\\alpha$-Net: “quotes” https://x.y/z"


# Texts and their keys worked out by hand from the rules in `pipeline.normalize`.
BY_HAND = [
    ("Fr\\'echet Inception Distance", "frechet inception distance"),
    ("Fréchet  inception distance", "frechet inception distance"),
    ("ﬁne-tuning ＬＬＭs", "fine tuning llms"),
    ("Scaling to 100\\% Recall!", "scaling to 100 recall"),
    ("Gra\\v{c}anin's method", "gracanin s method"),
    ("  Title\nwith a hard break ", "title with a hard break"),
    ("学习 (Learning)", "学习 learning"),
    (None, None),
    ("...", ""),
]


def test_keys_of_a_column_follow_the_rules_row_by_row_in_order():
    """ASCII and other texts take different paths over several slices of a long column: each row
    still gets its own key, in its place."""
    texts, expected = zip(*BY_HAND)
    n = 200_003  # not a multiple of anything, so the paths interleave unevenly
    column = pl.Series("abstract", [texts[i % len(texts)] for i in range(n)], dtype=pl.String)
    out = keys(column)
    assert out.name == "abstract" and out.len() == n
    assert out.to_list() == [expected[i % len(expected)] for i in range(n)]
    assert [title_key(t) for t in texts if t is not None] == [e for e in expected if e is not None]
