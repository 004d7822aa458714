"""Text rules shared by every parser and by resolution.

`clean_text` is the one white-space rule for titles and abstracts in every format. `key_expr` is the
normalized text used to match sightings of the same paper (titles: `title_key`; abstracts too):

1. Unicode NFKD, so that compatibility forms and precomposed accents split into base + mark;
2. LaTeX accent commands (`\\'e`, `\\"{o}`, `\\v{c}`) reduced to their letter, braces dropped;
3. combining marks dropped (`Fréchet` and `Fr\\'echet` both become `frechet`);
4. lower-cased;
5. every run of characters that are not letters or digits (punctuation, LaTeX escapes such as
   `\\%`, white space) becomes one space, and the ends are trimmed.
"""

from __future__ import annotations

import polars as pl

# \'e, \"{o}, \^{\i}: symbol accents, braces optional.
_LATEX_SYMBOL_ACCENT = r"""\\[`'^"~=.]\s*\{?\\?([A-Za-z])\}?"""
# \v{c}, \c{c}, \u{a}, \H{o}: letter accents, braces required (a bare \v would eat a word).
_LATEX_LETTER_ACCENT = r"\\[uvHckrbd]\{\\?([A-Za-z])\}"
# A run of characters that are not letters or digits, but a lone space (which the rule leaves as it
# is): most runs in a text are lone spaces between words, and matching each of them made this step
# take three times as long (abstracts of a million listings: 3.2 s against 1.2 s).
_SEPARATOR_RUN = r"[^\p{L}\p{N}]*[^\p{L}\p{N} ][^\p{L}\p{N}]*| {2,}"


# Control characters (C0, DEL, C1) and the bidirectional overrides and isolates, which can make a
# title display as something else: removed (white space among them is collapsed instead).
_INVISIBLE = dict.fromkeys([*range(0x00, 0x09), *range(0x0E, 0x20), *range(0x7F, 0xA0),
                            *range(0x202A, 0x202F), *range(0x2066, 0x206A)])


_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))


def clean_text(value: str | None) -> str | None:
    """Drop control characters, collapse every run of white space (line breaks included) to one
    space and trim the ends.

    Empty results are None: a missing field is null, never an empty string."""
    if value is None:
        return None
    # (printable ASCII told by deleting its bytes: four times faster than `isprintable`)
    if value.isascii() and not value.encode("ascii").translate(None, _PRINTABLE_ASCII) and "  " not in value:
        return value.strip(" ") or None  # the common case, where the rule below only trims the ends
    cleaned = " ".join(value.split())
    if not cleaned.isprintable():  # rare, and isprintable is a fast test for the common case
        cleaned = " ".join(cleaned.translate(_INVISIBLE).split())
    return cleaned or None


def key_expr(column: str, ascii_only: bool = False) -> pl.Expr:
    """The normalized form of a text column (the rules above), used as a match key. `ascii_only`:
    for a column of ASCII text only, where NFKD and combining marks change nothing (half the cost)."""
    text = pl.col(column)
    if not ascii_only:
        text = text.str.normalize("NFKD")
    text = (text.str.replace_all(_LATEX_SYMBOL_ACCENT, "$1")
            .str.replace_all(_LATEX_LETTER_ACCENT, "$1")
            .str.replace_all(r"[{}]", ""))
    if not ascii_only:
        text = text.str.replace_all(r"\p{M}+", "")
    return text.str.to_lowercase().str.replace_all(_SEPARATOR_RUN, " ").str.strip_chars()


def keys(texts: pl.Series) -> pl.Series:
    """`key_expr` over a whole column, on every core (Polars' streaming engine works on slices of
    the rows at once), the ASCII texts by the shorter rules; in one chunk (picked by position
    afterwards: from the engine's slices, a pick copied every key it took, at a million listings
    2.0 s and 0.4 GB more against 0.2 s)."""
    frame = texts.rename("text").to_frame().lazy().with_row_index("i")
    plain = (pl.col("text").str.len_bytes() == pl.col("text").str.len_chars()).fill_null(False)
    parts = [frame.filter(plain).select("i", key=key_expr("text", ascii_only=True)),
             frame.filter(~plain).select("i", key=key_expr("text"))]
    return pl.concat(parts).collect(engine="streaming").sort("i")["key"].rename(texts.name).rechunk()


def title_key_expr(column: str = "title") -> pl.Expr:
    return key_expr(column)


def title_key(title: str) -> str:
    """The same key for one title (for tests and tools; stages use `title_key_expr`)."""
    return pl.DataFrame({"title": [title]}).select(title_key_expr()).item()
