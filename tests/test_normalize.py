import itertools
import random
import unicodedata

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


# Removed by the rule (unless white space, which separates): C0 and C1 controls, DEL, bidi overrides.
INVISIBLE = {chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]}


def test_clean_text_of_random_texts_follows_its_rule():
    """Printable ASCII (the common case, taken by a shortcut) and texts with every kind of white
    space and invisible character, at the ends and inside."""
    rng = random.Random(7)
    odd = ["  ", "\t", "\n", "\r\n", "\x07", "\x1f", "\x7f", "\x85", "\u00a0", "\u2028", "\u202e", "é"]
    texts = ["".join(rng.choices(["a", "Z", "9", ".", " ", "~"], k=rng.randrange(0, 30))) for _ in range(3000)]
    texts += ["".join(rng.choices(["a", " ", *odd], k=rng.randrange(0, 30))) for _ in range(3000)]
    for text in texts:
        kept = "".join(" " if c.isspace() else c for c in text if c.isspace() or c not in INVISIBLE)
        assert clean_text(text) == (" ".join(kept.split()) or None), repr(text)


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


def _by_the_rules(text: str) -> str:
    """Rules 1, 3, 4 and 5 of `pipeline.normalize` in plain Python, character by character (the
    texts below have no LaTeX)."""
    text = unicodedata.normalize("NFKD", text).replace("{", "").replace("}", "")
    text = "".join(c for c in text if not unicodedata.category(c).startswith("M")).lower()
    runs = itertools.groupby(text, key=lambda c: unicodedata.category(c)[0] in "LN")
    return "".join("".join(run) if word else " " for word, run in runs).strip()


def test_keys_of_random_texts_follow_the_rules():
    """Every kind of run between words (a lone space, spaces, tabs, line breaks, punctuation,
    no-break and ideographic spaces, marks that NFKD splits off, and mixes of them) at the start,
    the end and between letters and digits, in ASCII texts and others."""
    alphabet = list("aZ9 ") * 4 + list("  \t\n,.-'(){}%") + ["\u00a0", "\u3000", "\u2019", "\u2013", "\u0301",
                                                               "é", "Ä", "学", "Ａ", "ﬁ", "²", "½"]
    rng = random.Random(16)
    texts = ["".join(rng.choices(alphabet, k=rng.randrange(0, 24))) for _ in range(5000)]
    texts += ["".join(rng.choices("ab, ", k=rng.randrange(0, 24))) for _ in range(5000)]  # ASCII only
    out = keys(pl.Series("t", texts, dtype=pl.String)).to_list()
    assert out == [_by_the_rules(t) for t in texts]
