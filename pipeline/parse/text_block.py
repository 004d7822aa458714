"""Text captures in the block layout: what a browser's "save as text" gives for a papers page.

A header (`Daily Papers`, `byAK and the research community`, the day shown, e.g. `May 7`), then for
each paper a title paragraph, an abstract paragraph and a metadata paragraph:

    Title

    Abstract on one line

      • 3 authors            (or an organization line: `<hub handle> <display name>`)
    ·
    Oct 4, 2023 12           (date, year only outside the current year, then upvotes if any)

The metadata paragraph, anchored on its lone `·` line, is what delimits entries: a title that looks
like a date or like `• 3 authors` stands in a paragraph of its own and is never taken for metadata.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.normalize import clean_text
from pipeline.parse.common import (MONTH_DAY, ParseContext, Reject, excerpt, local_dates, month_number,
                                   resolve_month_day, unix_newlines, lines as _lines)

HEADER_LINES = {
    "new",
    "Get trending papers in your email inbox!",
    "Get trending papers in your email inbox once a day!",
    "Subscribe",
    "Daily Papers",
    "Trending Papers",
    "byAK and the research community",
}
_HEADER_DAY = re.compile(MONTH_DAY + r"$")
_DATE_LINE = re.compile(MONTH_DAY + r"(?: (?P<upvotes>\d+))?$")
_AUTHORS_LINE = re.compile(r"•\s*(?P<n>\d+) authors?$")
_YEAR_IN_DATE_LINE = re.compile(r"^[A-Z][a-z]{2,8}\.? \d{1,2}, (\d{4})(?: \d+)?$")


def _anchors(lines: list[str]) -> list[int]:
    """Indexes of the `·` lines that sit inside a metadata paragraph."""
    return [
        i for i in range(1, len(lines) - 1)
        if lines[i].strip() == "·" and lines[i - 1].strip() and lines[i + 1].strip()
    ]


# A `·` line inside a metadata paragraph (what `_anchors` finds), found without cutting the page into
# lines: telling the format is a fifth of importing a folder of these pages. Each line start is tried
# once, and each part reads on to the end of one line at most: linear in the page's length.
_ANCHOR = re.compile(r"^(?=[^\n]*\S)[^\n]*\n[^\S\n]*·[^\S\n]*\n(?=[^\n]*\S)", re.MULTILINE)


def looks_like(text: str) -> bool:
    text = unix_newlines(text)
    if _ANCHOR.search(text):
        return True
    head = [line.strip() for line in text.split("\n") if line.strip()][:3]
    return bool(head) and all(line in HEADER_LINES for line in head)


def _header_end(lines: list[str], stop: int) -> tuple[int, str | None]:
    """Where the page header ends before line `stop`, and the day it shows (`May 7`), if any."""
    i, seen_header, day = 0, False, None
    while i < stop:
        line = lines[i].strip()
        if not line:
            i += 1
        elif line in HEADER_LINES:
            seen_header = True
            i += 1
        elif seen_header and day is None and _HEADER_DAY.match(line):
            day = line
            i += 1
            break  # the day closes the header: a title like "May 7" after it stays a title
        else:
            break
    return i, day


@dataclass(frozen=True)
class PageDay:
    """The day a page's header shows, and the years printed on its dates (the site prints a year
    only for dates of other years than the page's own)."""

    month: int
    day: int
    year: int | None  # when the header prints one
    printed_years: tuple[int, ...]


def page_day(text: str) -> PageDay | None:
    lines = _lines(text)
    anchors = _anchors(lines)
    _, day = _header_end(lines, anchors[0] if anchors else len(lines))
    match = _HEADER_DAY.match(day) if day else None
    if match is None or month_number(match["mon"]) is None:
        return None
    years = tuple(int(m.group(1)) for i in anchors if (m := _YEAR_IN_DATE_LINE.match(lines[i + 1].strip())))
    return PageDay(month_number(match["mon"]), int(match["day"]), int(match["year"]) if match["year"] else None, years)


def _header_date(day: str | None, captured_on: dt.date) -> dt.date | None:
    """The Daily Papers day a page's header shows (`May 7`): the latest such day not after the
    (latest local) date of capture."""
    match = _HEADER_DAY.match(day) if day else None
    if match is None:
        return None
    try:
        return resolve_month_day(match["mon"], match["day"], match["year"], captured_on)[0]
    except ValueError:
        return None


def _paragraphs(lines: list[str]) -> list[str]:
    paragraphs, current = [], []
    for line in lines:
        if line.strip():
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


def _entry(text_lines: list[str], meta_lines: list[str], date_lines: list[str],
           captured_on: dt.date) -> dict | Reject:
    paragraphs = _paragraphs(text_lines)
    if not paragraphs:
        return _reject(text_lines, meta_lines, date_lines, "missing_title", "metadata with no title or abstract before it")
    fields: dict = {
        "title": clean_text(paragraphs[0]),
        # An abstract with blank lines inside it is still one abstract.
        "abstract": clean_text(" ".join(paragraphs[1:])) if len(paragraphs) > 1 else None,
        "author_count": None,
        "organization": None,
        "organization_name": None,
    }
    for raw in meta_lines:
        line = raw.strip()
        if m := _AUTHORS_LINE.match(line):
            fields["author_count"] = int(m["n"])
        elif fields["organization"] is None and not line.startswith("•"):
            handle, _, name = line.partition(" ")
            fields["organization"] = handle
            fields["organization_name"] = clean_text(name)
        else:
            return _reject(text_lines, meta_lines, date_lines, "bad_metadata", f"unrecognised metadata line {line!r}")
    if len(date_lines) != 1:
        return _reject(text_lines, meta_lines, date_lines, "bad_metadata",
                       f"expected one date line after '·', found {len(date_lines)}")
    m = _DATE_LINE.match(date_lines[0].strip())
    if not m:
        return _reject(text_lines, meta_lines, date_lines, "bad_date", f"unrecognised date line {date_lines[0].strip()!r}")
    try:
        fields["published_on"], fields["published_on_basis"] = _shown_date(m["mon"], m["day"], m["year"], captured_on)
    except ValueError as err:
        return _reject(text_lines, meta_lines, date_lines, "bad_date", f"{date_lines[0].strip()!r}: {err}")
    fields["upvotes"] = int(m["upvotes"]) if m["upvotes"] is not None else None
    return fields


def _reject(text_lines: list[str], meta_lines: list[str], date_lines: list[str], rule: str, message: str) -> Reject:
    """A Reject quoting the entry's lines (made only for an entry that fails: most do not)."""
    return Reject(rule, message, excerpt("\n".join(text_lines + meta_lines + ["·"] + date_lines).strip()))


# A page's dates repeat (the same days, against the same day of capture): each is worked out once.
_shown_date = functools.lru_cache(maxsize=4096)(resolve_month_day)


def parse(text: str, ctx: ParseContext) -> Iterator[dict | Reject]:
    """Every entry of the page, in order: a dict of listing fields or a Reject."""
    lines = _lines(text)
    anchors = _anchors(lines)
    start, day = _header_end(lines, anchors[0] if anchors else len(lines))
    # The page shows local dates. Its header's day is the latest local date the capture could have
    # had, or earlier; the entries of a day's page are of that day or earlier, so a date without a
    # year is placed against it (against the latest local date when the page shows no day).
    latest = local_dates(ctx.captured_at)[1]
    daily_date = _header_date(day, latest)
    captured_on = daily_date or latest
    for anchor in anchors:
        meta_start = anchor - 1
        while meta_start > start and lines[meta_start - 1].strip():
            meta_start -= 1
        end = anchor + 1
        while end < len(lines) and lines[end].strip():
            end += 1
        entry = _entry(lines[start:meta_start], lines[meta_start:anchor], lines[anchor + 1:end], captured_on)
        if isinstance(entry, dict):
            entry["daily_date"] = daily_date
        yield entry
        start = end
    rest = "\n".join(lines[start:]).strip()
    if rest:
        yield Reject("missing_metadata", "text after the last entry that has no metadata paragraph",
                     excerpt(rest))
