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


@dataclass(frozen=True)
class Reject:
    """An entry (or a whole page, position None) that could not become a listing, and why."""

    rule: str
    message: str
    excerpt: str | None = None
    whole_page: bool = False  # the page as a whole, not one entry of it


def excerpt(text: str | None) -> str | None:
    if text is None:
        return None
    return text[:EXCERPT_CHARS]


def month_number(name: str) -> int | None:
    return MONTHS.get(name[:3].lower())


def resolve_month_day(mon: str, day: str, year: str | None, captured_on: dt.date) -> tuple[dt.date, str]:
    """The date a listing shows, with the rule that gave its year.

    Without a year the date is in the year of capture, or the year before when that would put it
    after the capture. Raises ValueError for a date that does not exist."""
    month = month_number(mon)
    if month is None:
        raise ValueError(f"unknown month {mon!r}")
    if year is not None:
        return dt.date(int(year), month, int(day)), "explicit"
    try:
        candidate = dt.date(captured_on.year, month, int(day))
    except ValueError:
        candidate = None  # Feb 29 of a year that has none: only the year before can hold it
    if candidate is None or candidate > captured_on:
        return dt.date(captured_on.year - 1, month, int(day)), "year_inferred"
    return candidate, "year_inferred"


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
