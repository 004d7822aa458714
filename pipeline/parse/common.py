"""What every parser yields, and the small field rules they share."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}

# "Oct 3, 2024", "Apr 16", "Sept 3, 2024"; the site writes a year only outside the current year.
MONTH_DAY = r"(?P<mon>[A-Z][a-z]{2,8})\.? (?P<day>\d{1,2})(?:, (?P<year>\d{4}))?"

EXCERPT_CHARS = 300


@dataclass(frozen=True)
class ParseContext:
    """What a parser may know of a capture besides its text."""

    captured_at: dt.datetime
    origin: str = ""  # URL or file name
    params: dict = field(default_factory=dict)  # date, query, page, ...
    source: str = ""  # hf_daily_api, hf_search_api, ...: search pages list no Daily Papers day


@dataclass(frozen=True)
class Reject:
    """An entry (or a whole page, position None) that could not become a listing, and why."""

    rule: str
    message: str
    excerpt: str | None = None
    whole_page: bool = False  # the page as a whole, not one entry of it


def lines(text: str) -> list[str]:
    """The lines of a page, whichever line breaks it was saved with (CR LF, CR or LF)."""
    return unix_newlines(text).split("\n")


def unix_newlines(text: str) -> str:
    # (most pages have no CR: the test is a fast scan, the replacements copy the page twice)
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def excerpt(text: str | None) -> str | None:
    if text is None:
        return None
    return text[:EXCERPT_CHARS]


# Local time runs from UTC-12 to UTC+14: an instant is on one of up to three local dates.
EARLIEST_OFFSET, LATEST_OFFSET = dt.timedelta(hours=-12), dt.timedelta(hours=14)


def local_dates(instant: dt.datetime) -> tuple[dt.date, dt.date]:
    """The earliest and the latest local date of `instant` anywhere on Earth."""
    utc = instant.astimezone(dt.timezone.utc)
    return (utc + EARLIEST_OFFSET).date(), (utc + LATEST_OFFSET).date()


def month_number(name: str) -> int | None:
    return MONTHS.get(name[:3].lower())


def resolve_month_day(mon: str, day: str, year: str | None, captured_on: dt.date) -> tuple[dt.date, str]:
    """The date a listing shows, with the rule that gave its year.

    Without a year the date is in the year of capture, or the year before when that would put it
    after the capture. Raises ValueError for a date that does not exist, and for a `Feb 29` without
    a year when the year of capture has none (the site would have printed the year of another
    year's Feb 29)."""
    month = month_number(mon)
    if month is None:
        raise ValueError(f"unknown month {mon!r}")
    if year is not None:
        return dt.date(int(year), month, int(day)), "explicit"
    candidate = dt.date(captured_on.year, month, int(day))
    if candidate > captured_on:
        return dt.date(captured_on.year - 1, month, int(day)), "year_inferred"
    return candidate, "year_inferred"


# New-style ids (`2401.00001`, since 2007) and old-style ones (`hep-th/9901001`, `math.AG/0309136`:
# the subject class is shown but is not part of the id), each with an optional version.
_ARXIV = re.compile(r"(?:arxiv:)?\s*(?:(?P<new>\d{4}\.\d{4,5})|(?P<archive>[a-z]+(?:-[a-z]+)?)(?:\.[a-z]+(?:-[a-z]+)?)?/(?P<old>\d{7}))"
                    r"(?:v(?P<version>\d+))?", re.IGNORECASE)


def arxiv_id(value: str) -> tuple[str, int | None]:
    """The canonical arXiv id (no `arXiv:` prefix, no version, no subject class) and the version
    the value named; a value that is no arXiv id comes back as it is (the suite quarantines it)."""
    text = value.strip()
    m = _ARXIV.fullmatch(text)
    if m is None:
        return text, None
    canonical = m["new"] or f"{m['archive'].lower()}/{m['old']}"
    return canonical, int(m["version"]) if m["version"] else None


def utc_date(value, field: str) -> dt.date | None:
    """The UTC date of an ISO-8601 time from JSON (`2025-10-01T01:58:54.337Z`); None when absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field} is {type(value).__name__}, not a string")
    parsed = dt.datetime.fromisoformat(value)
    return (parsed.astimezone(dt.timezone.utc) if parsed.tzinfo else parsed).date()


def non_negative_int(value) -> int | None:
    """An integer count from JSON or text; None when absent. Raises ValueError when not a count."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"not a count: {value!r}")
    if isinstance(value, str):
        if not re.fullmatch(r"\d+", value.strip()):
            raise ValueError(f"not a count: {value!r}")
        value = int(value)
    if value < 0:
        raise ValueError(f"negative count: {value}")
    return value
