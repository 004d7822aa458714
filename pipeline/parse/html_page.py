"""The HTML papers pages (`/papers`, `/papers/date/YYYY-MM-DD`, `/papers/week/…`, `/papers/month/…`,
`/papers/trending`, `/papers?q=…`).

The listing is read from the hydration JSON the page embeds for its Svelte component,
`<div class="SVELTE_HYDRATER contents" data-target="DailyPapers" data-props="{…}">`, never from the
visible markup. Its `dailyPapers` (search pages: `searchResults`) holds the same items as the API.
A date with no papers shows the latest date instead, so a page whose `dateString` is not the date
asked for gives no listings: one reject says so.

A paper's own page (`/papers/{arxiv_id}`) embeds `PaperContent`, whose `paper` is the API's paper
object: format `paper_page`, one listing.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator

from selectolax.lexbor import LexborHTMLParser

from pipeline.parse import api_json
from pipeline.parse.common import ParseContext, Reject, excerpt

LIST_KEYS = ("dailyPapers", "searchResults")
PAPER_KEY = ("paper",)
_DATE_IN_URL = re.compile(r"/papers/date/(\d{4}-\d{2}-\d{2})")


def looks_like(text: str) -> bool:
    """An HTML document: it opens with markup (text that merely mentions the hydrater is not one)."""
    head = text[:4096].lstrip().lower()
    return head.startswith(("<!doctype html", "<html")) or (head.startswith("<") and "data-props=" in text)


# A start tag, by the HTML syntax of attributes (quoted values may hold `>`). Every quantifier is
# possessive: a match never backtracks, and a failed one stops at the first character that cannot be
# part of the tag (a `<` cannot start an attribute name, so an unclosed tag ends at the next `<`).
_START_TAG = re.compile(
    r"""<[A-Za-z][^\s/<>]*+(?:\s++[^\s"'<>/=]++(?:\s*+=\s*+(?:"[^"]*+"|'[^']*+'|[^\s"'=<>`]++))?+)*+\s*+/?>""")
_TAG_OPEN = re.compile(r"<[A-Za-z]")


def _payloads(text: str, keys: tuple[str, ...] = LIST_KEYS) -> list[dict]:
    """The hydration payloads: each tag carrying `data-props` is cut out and parsed alone. Parsing
    the whole document is never needed, and deeply nested or broken markup costs nothing.

    Tags are read in one pass from the start, each from where the one before it ended (or, for text
    that is no tag, from the next `<`), so no part of the page is read again for each `data-props`:
    the time is linear in the page, whatever the page holds."""
    found = []
    last = text.rfind("data-props")
    cursor = 0
    while last != -1 and (opening := _TAG_OPEN.search(text, cursor, last)) is not None:
        tag = _START_TAG.match(text, opening.start())
        if tag is None:
            cursor = opening.start() + 1
            continue
        cursor = tag.end()
        if "data-props" not in tag.group(0):
            continue
        node = LexborHTMLParser(tag.group(0)).css_first("[data-props]")
        doc = api_json.load(node.attributes.get("data-props") or "") if node is not None else None
        if isinstance(doc, dict) and any(k in doc for k in keys):
            found.append(doc)
    return found


def requested_date(ctx: ParseContext) -> str | None:
    if ctx.params.get("date"):
        return str(ctx.params["date"])
    m = _DATE_IN_URL.search(ctx.origin or "")
    return m.group(1) if m else None


def parse(text: str, ctx: ParseContext) -> Iterator[dict | Reject]:
    payloads = _payloads(text)
    if not payloads:
        yield Reject("missing_payload", "no hydration JSON with a papers list (data-props) on the page", excerpt(text),
                     whole_page=True)
        return
    doc = payloads[0]
    key = next(k for k in LIST_KEYS if k in doc)
    items = doc[key]
    if not isinstance(items, list):
        yield Reject("payload_shape", f"{key} is {type(items).__name__}, not a list",
                     excerpt(json.dumps(doc, default=str)[:1000]), whole_page=True)
        return
    asked, shown = requested_date(ctx), doc.get("dateString") or doc.get("date")  # older pages say `date`
    one_day = doc.get("periodType", "day") == "day"
    if asked and one_day and isinstance(shown, str) and shown[:10] != asked:
        yield Reject("date_mismatch",
                     f"asked for {asked}, the page shows {shown[:10]} instead: its {len(items)} entries are not of that date",
                     excerpt(json.dumps(doc, default=str)[:1000]), whole_page=True)
        return
    daily = key == "dailyPapers"
    yield from api_json.entries(items, _day(shown) if daily and one_day else None, daily)


def _day(value) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value[:10]) if isinstance(value, str) else None
    except ValueError:
        return None


def looks_like_paper_page(text: str) -> bool:
    return looks_like(text) and "PaperContent" in text and bool(_payloads(text, PAPER_KEY))


def parse_paper_page(text: str, ctx: ParseContext) -> Iterator[dict | Reject]:
    docs = [d for d in _payloads(text, PAPER_KEY) if isinstance(d["paper"], dict)]
    if not docs:
        yield Reject("missing_payload", "no hydration JSON with a paper object (PaperContent) on the page",
                     excerpt(text), whole_page=True)
        return
    doc = docs[0]
    comments = doc.get("comments")
    item = {"numComments": len(comments) if isinstance(comments, list) else None,
            "organization": doc.get("submitterOrganization")}
    yield api_json.entry(doc["paper"], item)
