"""The Hub's papers JSON API.

- `GET /api/daily_papers` and `GET /api/papers/search?q=`: a JSON array of items, each holding a
  `paper` object (`id` = arXiv id, `title`, `summary`, `authors[].name`, `publishedAt`, `upvotes`,
  optional `projectPage`, `githubRepo`, `ai_keywords`, `organization{name, fullname}`) and around it
  `numComments`, `organization`, `title`, `summary`;
- `GET /api/papers/{arxiv_id}`: the flat `paper` object.

Numbers with a fraction are read as decimals, so an id sent as a number keeps its digits
(`2503.02130` never becomes `2503.0213`). Unknown fields are ignored; a missing optional one is null.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal

from pipeline.normalize import clean_text
from pipeline.parse.common import ParseContext, Reject, arxiv_id, excerpt, non_negative_int, utc_date


def load(text: str):
    """The JSON document, or None when it is not JSON."""
    try:
        # strict=False: a raw control character inside a string (a NUL in one title) spoils that
        # field only; clean_text removes it
        return json.loads(text, parse_float=Decimal, strict=False)
    except (ValueError, RecursionError):
        return None


def _is_item(value) -> bool:
    return isinstance(value, dict) and isinstance(value.get("paper"), dict)


def _is_paper(value) -> bool:
    return isinstance(value, dict) and "id" in value and "title" in value and "paper" not in value


def looks_like_items(text: str) -> bool:
    if not text.lstrip().startswith(("[", "{")):
        return False
    doc = load(text)
    return (isinstance(doc, list) and (not doc or any(_is_item(v) for v in doc))) or _is_item(doc)


def looks_like_paper(text: str) -> bool:
    return text.lstrip().startswith("{") and _is_paper(load(text))


def _text(value, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field} is {type(value).__name__}, not a string")
    return clean_text(value)


def _arxiv_id(value) -> tuple[str | None, int | None]:
    if value is None:
        return None, None
    if isinstance(value, Decimal):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"id is {type(value).__name__}, not a string")
    return arxiv_id(value) if value.strip() else (None, None)


def _org(value) -> tuple[str | None, str | None]:
    if not isinstance(value, dict):
        return None, None
    return _text(value.get("name"), "organization.name"), _text(value.get("fullname"), "organization.fullname")


def _strings(value, field: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError(f"{field} is {type(value).__name__}, not a list")
    out = [clean_text(v) for v in value if isinstance(v, str)]
    return [v for v in out if v]


def listing_fields(paper: dict, item: dict | None = None, daily_date: dt.date | None = None,
                   daily: bool = True) -> dict:
    """Listing fields from a `paper` object and the daily/search item around it (if any).
    `daily_date`: the Daily Papers day the page is of (a fetched day), else the paper's own
    `submittedOnDailyAt`; none at all when not `daily` (a search page).
    Raises ValueError (or KeyError/TypeError) for a field of the wrong type."""
    item = item or {}
    authors = paper.get("authors")
    if authors is not None and not isinstance(authors, list):
        raise ValueError(f"authors is {type(authors).__name__}, not a list")
    names = [clean_text(a.get("name")) if isinstance(a, dict) and isinstance(a.get("name"), str) else None
             for a in authors or []]
    names = [n for n in names if n]
    org, org_name = _org(paper.get("organization"))
    if org is None:
        org, org_name = _org(item.get("organization"))
    published = utc_date(paper.get("publishedAt"), "publishedAt")
    arxiv, version = _arxiv_id(paper.get("id"))
    submitted = utc_date(paper.get("submittedOnDailyAt"), "submittedOnDailyAt")
    return {
        "title": _text(paper.get("title"), "title") or _text(item.get("title"), "title"),
        "abstract": _text(paper.get("summary"), "summary") or _text(item.get("summary"), "summary"),
        "authors": names or None,
        "author_count": len(authors) if authors else None,  # an empty list says nothing of the authors
        "organization": org,
        "organization_name": org_name,
        "published_on": published,
        "published_on_basis": "api" if published else None,
        "upvotes": non_negative_int(paper.get("upvotes")),
        "comments": non_negative_int(item.get("numComments")),
        "arxiv_id": arxiv,
        "arxiv_version": version,
        "github_repo": _text(paper.get("githubRepo"), "githubRepo"),
        "project_page": _text(paper.get("projectPage"), "projectPage"),
        "ai_keywords": _strings(paper.get("ai_keywords"), "ai_keywords"),
        "daily_date": (daily_date or submitted) if daily else None,
        "ai_summary": _text(paper.get("ai_summary"), "ai_summary"),
        "github_stars": non_negative_int(paper.get("githubStars")),
    }


def entry(paper, item: dict | None = None, daily_date: dt.date | None = None, daily: bool = True) -> dict | Reject:
    if not isinstance(paper, dict):
        return Reject("bad_item", f"item is {type(paper).__name__}, not an object with a paper", excerpt(repr(paper)))
    try:
        fields = listing_fields(paper, item, daily_date, daily)
    except (ValueError, TypeError, KeyError, OverflowError) as err:
        return Reject("bad_field", str(err), excerpt(json.dumps(paper, default=str)[:1000]))
    if not fields["title"]:
        return Reject("missing_title", "paper without a title", excerpt(json.dumps(paper, default=str)[:1000]))
    return fields


def entries(items: list, daily_date: dt.date | None = None, daily: bool = True) -> Iterator[dict | Reject]:
    for item in items:
        yield entry(item.get("paper") if isinstance(item, dict) else item, item if isinstance(item, dict) else None,
                    daily_date, daily)


def requested_day(ctx: ParseContext) -> dt.date | None:
    """The day a fetched daily page asked for (its `date` parameter), if it was one."""
    try:
        return dt.date.fromisoformat(str(ctx.params["date"])[:10]) if ctx.params.get("date") else None
    except ValueError:
        return None


def parse_items(text: str, ctx: ParseContext) -> Iterator[dict | Reject]:
    doc = load(text)
    daily = ctx.source != "hf_search_api"
    yield from entries([doc] if isinstance(doc, dict) else doc, requested_day(ctx) if daily else None, daily)


def parse_paper(text: str, ctx: ParseContext) -> Iterator[dict | Reject]:
    yield entry(load(text))
