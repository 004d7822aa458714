"""When a saved page was captured, and the dates it shows, in every time zone: pages rendered from a
known capture instant, local offset and header day, checked against those known values."""

import datetime as dt
import os

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bench.render import block_page
from pipeline import parse
from pipeline.parse import text_block
from pipeline.parse.common import ParseContext, resolve_month_day
from pipeline.sources.folder import capture_time

UTC = dt.timezone.utc


@st.composite
def saved_pages(draw, previous_year_entry: bool = False):
    """A page saved at a known instant by someone at a known UTC offset: its header shows a day up
    to three days before their local date (weekends show Friday's papers); its entries are of that
    day or earlier, a year printed only for other years than the local date's."""
    instant = draw(st.datetimes(min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2027, 12, 31),
                                timezones=st.just(UTC)))
    offset = dt.timedelta(minutes=15 * draw(st.integers(-12 * 4, 14 * 4)))
    local = (instant + offset).date()
    shown = local - dt.timedelta(days=draw(st.integers(0, 3)))
    back = st.integers(0, 500)
    published = sorted({shown - dt.timedelta(days=draw(back)) for _ in range(draw(st.integers(1, 6)))})
    if previous_year_entry:  # the page prints a date of the year before its own
        published.append(dt.date(local.year - 1, 12, 1) if shown.year == local.year else shown)
    entries = [{"title": f"Paper number {i}", "abstract": f"Abstract {i}.", "author_count": 1,
                "published_on": day, "upvotes": i} for i, day in enumerate(published)]
    return instant, local, shown, entries


def write(tmp_path, page: str, mtime: dt.datetime):
    path = tmp_path / "page.txt"
    path.write_text(page, encoding="utf-8")
    ns = int(mtime.timestamp()) * 10**9 + mtime.microsecond * 1000
    os.utime(path, ns=(ns, ns))
    return path


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(saved_pages())
def test_a_page_saved_anywhere_is_dated_by_its_file_time_and_its_entries_keep_their_dates(tmp_path, page):
    instant, local, shown, entries = page
    text = block_page(entries, local, shown=shown)
    path = write(tmp_path, text, instant)
    data = path.read_bytes()
    when, basis = capture_time(parse.detect(data), data, path, None)
    assert (when, basis) == (instant.replace(microsecond=when.microsecond), "file_mtime+page_day")
    parsed = list(text_block.parse(text, ParseContext(when)))
    assert [e["published_on"] for e in parsed] == [e["published_on"] for e in entries]
    assert {e["daily_date"] for e in parsed} == {shown}


@SETTINGS
@given(saved_pages(previous_year_entry=True), st.integers(2, 300))
def test_a_page_copied_later_is_dated_by_its_day_and_printed_years(tmp_path, page, days_later):
    """(Copied less than a year later: a copy a year later on the same day looks like a save.)"""
    instant, local, shown, entries = page
    # The header's day in the year of the page (not the last days of December seen in January).
    assume(shown.year == local.year)
    text = block_page(entries, local, shown=shown)
    copied = instant + dt.timedelta(days=days_later + 8)  # the file time is the copy's, well after
    path = write(tmp_path, text, copied)
    data = path.read_bytes()
    when, basis = capture_time(parse.detect(data), data, path, None)
    assert (when, basis) == (dt.datetime(shown.year, shown.month, shown.day, tzinfo=UTC), "page_day+printed_years")
    parsed = list(text_block.parse(text, ParseContext(when)))
    assert [e["published_on"] for e in parsed] == [e["published_on"] for e in entries]


def test_a_page_saved_just_after_midnight_east_of_utc_keeps_its_year(tmp_path):
    # 00:30 on 2026-05-07 in Tokyo is 15:30 UTC on May 6: the page's "May 7" is today, not 2025.
    instant = dt.datetime(2026, 5, 6, 15, 30, tzinfo=UTC)
    entries = [{"title": "Published today in Tokyo", "abstract": "A.", "author_count": 1,
                "published_on": dt.date(2026, 5, 7)}]
    text = block_page(entries, dt.date(2026, 5, 7))
    path = write(tmp_path, text, instant)
    when, basis = capture_time(parse.detect(path.read_bytes()), path.read_bytes(), path, None)
    assert (when, basis) == (instant, "file_mtime+page_day")
    (entry,) = text_block.parse(text, ParseContext(when))
    assert entry["published_on"] == dt.date(2026, 5, 7) and entry["daily_date"] == dt.date(2026, 5, 7)


def test_new_years_day_east_of_utc(tmp_path):
    instant = dt.datetime(2025, 12, 31, 16, 0, tzinfo=UTC)  # 01:00 on 2026-01-01 in Tokyo
    entries = [{"title": "A New Year paper", "abstract": "A.", "author_count": 1, "published_on": dt.date(2026, 1, 1)},
               {"title": "An old year paper", "abstract": "B.", "author_count": 1, "published_on": dt.date(2025, 12, 30)}]
    text = block_page(entries, dt.date(2026, 1, 1))
    path = write(tmp_path, text, instant)
    when, basis = capture_time(parse.detect(path.read_bytes()), path.read_bytes(), path, None)
    assert basis == "file_mtime+page_day"
    assert [e["published_on"] for e in text_block.parse(text, ParseContext(when))] == [
        dt.date(2026, 1, 1), dt.date(2025, 12, 30)]


def test_a_copied_page_whose_dated_entries_are_two_years_old_is_not_put_a_year_early(tmp_path):
    # Saved 2026-03-03 (the file time says so); its only dated entries are of 2024.
    entries = [{"title": "Old paper", "abstract": "A.", "author_count": 1, "published_on": dt.date(2024, 6, 1)}]
    text = block_page(entries, dt.date(2026, 3, 3))
    path = write(tmp_path, text, dt.datetime(2026, 3, 3, 10, tzinfo=UTC))
    when, basis = capture_time(parse.detect(path.read_bytes()), path.read_bytes(), path, None)
    assert (when.date(), basis) == (dt.date(2026, 3, 3), "file_mtime+page_day")


def test_a_page_with_no_day_nor_printed_years_that_the_file_time_does_not_fit_is_dated_by_the_file(tmp_path):
    entries = [{"title": "A paper", "abstract": "A.", "author_count": 1, "published_on": dt.date(2026, 3, 1)}]
    text = block_page(entries, dt.date(2026, 3, 3))
    copied = dt.datetime(2026, 8, 1, 10, tzinfo=UTC)
    path = write(tmp_path, text, copied)
    assert capture_time(parse.detect(path.read_bytes()), path.read_bytes(), path, None) == (copied, "file_mtime")


@pytest.mark.parametrize("captured", [dt.date(2025, 3, 1), dt.date(2026, 3, 1)])
def test_feb_29_without_a_year_under_a_year_without_one_is_no_date(captured):
    with pytest.raises(ValueError):
        resolve_month_day("Feb", "29", None, captured)


def test_feb_29_without_a_year_in_a_leap_year():
    assert resolve_month_day("Feb", "29", None, dt.date(2024, 3, 1)) == (dt.date(2024, 2, 29), "year_inferred")
