import datetime as dt

import pytest
from hypothesis import given, settings, strategies as st

from pipeline.parse import text_block
from pipeline.parse.common import ParseContext, Reject, resolve_month_day
from bench.render import block_page
from conftest import SAMPLES

CAPTURED = {  # the day each sample was saved, and how many entries it shows
    "000_b32d59d65bae7777.txt": (dt.date(2026, 5, 7), 43),
    "001_787c8ed970bce0ee.txt": (dt.date(2026, 2, 6), 45),
    "003_2917b069e52b5a1e.txt": (dt.date(2025, 11, 6), 90),
}


def entries(name):
    text = (SAMPLES / name).read_text(encoding="utf-8")
    day = CAPTURED[name][0]
    return list(text_block.parse(text, ParseContext(dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.timezone.utc))))


def by_title(name, title):
    (entry,) = [e for e in entries(name) if e["title"] == title]
    return entry


@pytest.mark.parametrize("name", sorted(CAPTURED))
def test_the_header_shows_the_day_and_the_dates_print_only_other_years(name):
    text = (SAMPLES / name).read_text(encoding="utf-8")
    day, _ = CAPTURED[name]
    shown = text_block.page_day(text)
    assert (shown.month, shown.day, shown.year) == (day.month, day.day, None)
    assert shown.printed_years and max(shown.printed_years) < day.year


@pytest.mark.parametrize("name", sorted(CAPTURED))
def test_every_entry_is_a_complete_listing(name):
    found = entries(name)
    assert len(found) == CAPTURED[name][1]
    assert not [e for e in found if isinstance(e, Reject)]
    for e in found:
        assert e["title"] and e["abstract"] and e["published_on"]
        assert e["author_count"] is not None or e["organization"] is not None
        assert e["title"] == " ".join(e["title"].split())
        assert e["published_on"] <= CAPTURED[name][0]


def test_fields_of_an_authors_entry():
    e = by_title("000_b32d59d65bae7777.txt", "CoLiDE: Concomitant Linear DAG Estimation")
    assert e["abstract"].startswith("We deal with the combinatorial problem of learning directed acyclic graph")
    assert e["abstract"].endswith("underscoring the robustness of our novel linear DAG estimator.")
    assert e["author_count"] == 3
    assert e["organization"] is None and e["organization_name"] is None
    assert (e["published_on"], e["published_on_basis"]) == (dt.date(2023, 10, 4), "explicit")
    assert e["upvotes"] is None


def test_fields_of_an_organization_entry_with_upvotes_and_no_year():
    e = by_title("000_b32d59d65bae7777.txt", "Target-Oriented Pretraining Data Selection via Neuron-Activated Graph")
    assert (e["organization"], e["organization_name"]) == ("UCSC-VLAA", "UCSC-VLAA")
    assert e["author_count"] is None
    assert (e["published_on"], e["published_on_basis"]) == (dt.date(2026, 4, 16), "year_inferred")
    assert e["upvotes"] == 2
    assert "https://github.com/asillycat/NAG." in e["abstract"]


def test_upvotes_after_an_explicit_year():
    e = by_title("001_787c8ed970bce0ee.txt", "One-step Diffusion Models with f-Divergence Distribution Matching")
    assert (e["published_on"], e["published_on_basis"], e["upvotes"]) == (dt.date(2025, 2, 21), "explicit", 2)


def test_year_inferred_from_capture_year():
    e = by_title("003_2917b069e52b5a1e.txt", "Glocal Information Bottleneck for Time Series Imputation")
    assert (e["published_on"], e["published_on_basis"], e["upvotes"]) == (dt.date(2025, 10, 6), "year_inferred", 2)
    e = by_title("003_2917b069e52b5a1e.txt",
                 "Beyond Backpropagation: Exploring Innovative Algorithms for Energy-Efficient Deep Neural Network Training")
    assert (e["published_on"], e["author_count"], e["upvotes"]) == (dt.date(2025, 9, 23), 1, None)


@pytest.mark.parametrize("shown, captured, expected", [
    (("Apr", "16", None), dt.date(2026, 5, 7), dt.date(2026, 4, 16)),
    (("Dec", "2", None), dt.date(2026, 5, 7), dt.date(2025, 12, 2)),  # after the capture: the year before
    (("May", "7", None), dt.date(2026, 5, 7), dt.date(2026, 5, 7)),
    (("Feb", "29", None), dt.date(2024, 3, 1), dt.date(2024, 2, 29)),
    (("Oct", "3", "2024"), dt.date(2026, 5, 7), dt.date(2024, 10, 3)),
])
def test_year_rules(shown, captured, expected):
    assert resolve_month_day(*shown, captured)[0] == expected


def test_organization_handle_and_name_are_split():
    page = block_page([{"title": "T", "abstract": "A", "organization": "Uchicago",
                        "organization_name": "University of Chicago", "published_on": dt.date(2024, 1, 2)}],
                      dt.date(2026, 1, 1))
    (e,) = text_block.parse(page, ParseContext(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)))
    assert (e["organization"], e["organization_name"]) == ("Uchicago", "University of Chicago")


def test_titles_that_look_like_metadata_stay_titles():
    tricky = [
        {"title": "May 7", "abstract": "A date as a title.", "author_count": 2, "published_on": dt.date(2026, 5, 1)},
        {"title": "• 3 authors", "abstract": "·", "author_count": 4, "published_on": dt.date(2025, 5, 1), "upvotes": 9},
        {"title": "Oct 3, 2024", "abstract": None, "author_count": 1, "published_on": dt.date(2024, 10, 3)},
    ]
    captured = dt.date(2026, 5, 7)
    page = block_page(tricky, captured)
    found = list(text_block.parse(page, ParseContext(dt.datetime(2026, 5, 7, tzinfo=dt.timezone.utc))))
    assert [(e["title"], e["abstract"], e["author_count"], e["published_on"], e["upvotes"]) for e in found] == [
        ("May 7", "A date as a title.", 2, dt.date(2026, 5, 1), None),
        ("• 3 authors", "·", 4, dt.date(2025, 5, 1), 9),
        ("Oct 3, 2024", None, 1, dt.date(2024, 10, 3), None),
    ]


def test_broken_entries_become_rejects_and_nothing_is_lost():
    page = "\n".join([
        "Daily Papers", "", "byAK and the research community", "", "May 7", "",
        "Good title", "", "Good abstract", "", "  • 2 authors", "·", "Mar 3, 2024", "",
        "Bad date", "", "Abstract", "", "  • 2 authors", "·", "Smarch 40", "",
        "  • 1 authors", "·", "Mar 3, 2024", "",
        "Trailing title with no metadata", "", "and its abstract",
    ])
    found = list(text_block.parse(page, ParseContext(dt.datetime(2026, 5, 7, tzinfo=dt.timezone.utc))))
    assert [e["title"] if isinstance(e, dict) else e.rule for e in found] == [
        "Good title", "bad_date", "missing_title", "missing_metadata"]
    assert "Trailing title" in found[-1].excerpt


def test_detection_by_content():
    assert text_block.looks_like((SAMPLES / "000_b32d59d65bae7777.txt").read_text())
    assert not text_block.looks_like("just some words\nand more\n")


# Lines as a page may have them: the dot alone or padded with any white space (the non-breaking
# and the Unicode line separator too, which are spaces, not line breaks, here), empty or blank
# lines, header lines, and text with a dot inside.
LINE = st.sampled_from(["·", " · ", "\t·\xa0", "\u2028·", "·\x0b", "", " ", "\xa0", "\u2028", "a", "Daily Papers",
                        "Trending Papers", "May 7", "x · y", "··"])


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, max_size=8), st.sampled_from(["\n", "\r\n", "\r"]))
def test_the_layout_is_told_by_a_dot_line_between_lines_with_text_or_by_its_header(lines, newline):
    """By the rule: a line that is `·` (white space aside) with text on the line before and after
    it, or else a page whose first three lines with text are all header lines."""
    text = [line.strip() for line in lines]
    dotted = any(text[i] == "·" and text[i - 1] and text[i + 1] for i in range(1, len(lines) - 1))
    head = [line for line in text if line][:3]
    expected = dotted or (bool(head) and all(line in text_block.HEADER_LINES for line in head))
    assert text_block.looks_like(newline.join(lines)) == expected
