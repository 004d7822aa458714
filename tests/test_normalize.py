import pytest

from pipeline.normalize import clean_text, title_key


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


def test_clean_text_collapses_every_whitespace_run_and_nulls_empty():
    assert clean_text(" a\n\n b\t\u00a0c\r\n") == "a b c"
    assert clean_text("  \n ") is None
    assert clean_text(None) is None
    assert clean_text("$\\alpha$-Net: “quotes” https://x.y/z") == "$\\alpha$-Net: “quotes” https://x.y/z"
