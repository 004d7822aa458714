"""Render listing entries into the page layouts the parsers read (for tests and generated corpora)."""

from __future__ import annotations

import datetime as dt

HEADER = ["new", "", "Get trending papers in your email inbox!", "", "Subscribe", "", "Daily Papers", "",
          "byAK and the research community", ""]


def block_date(published: dt.date, captured: dt.date, upvotes: int | None) -> str:
    text = f"{published:%b} {published.day}"
    if published.year != captured.year:
        text += f", {published.year}"
    return text + (f" {upvotes}" if upvotes is not None else "")


def block_page(entries: list[dict], captured: dt.date, header_day: bool = True, shown: dt.date | None = None) -> str:
    """The block layout of a saved papers page viewed on the local date `captured` (dates of other
    years print their year); the header shows the day `shown` (default: `captured`). Each entry:
    title, abstract, published_on, upvotes and author_count or organization (+ organization_name)."""
    lines = list(HEADER)
    if header_day:
        day = shown or captured
        lines += [f"{day:%b} {day.day}", ""]
    for e in entries:
        lines += [e["title"], "", e.get("abstract") or "", ""]
        if e.get("organization"):
            lines.append(" ".join(p for p in (e["organization"], e.get("organization_name")) if p))
        else:
            lines.append(f"  • {e['author_count']} authors")
        lines += ["·", block_date(e["published_on"], captured, e.get("upvotes")), ""]
    return "\n".join(lines).rstrip("\n")


def compact_page(entries: list[dict], final_newline: bool = True) -> str:
    """The compact layout: two header lines, then title and abstract lines, `Subscribe` glued on."""
    lines = ["Get trending papers in your email inbox once a day!", "Get trending papers in your email inbox!"]
    for e in entries:
        lines += [e["title"], e.get("abstract") or ""]
    if entries:
        lines[2] = "Subscribe" + lines[2]
    return "\n".join(lines) + ("\n" if final_newline else "")


def api_item(e: dict) -> dict:
    """A daily-papers API item for an entry (fields named as the Hub names them)."""
    paper = {"id": e.get("arxiv_id"), "title": e["title"], "summary": e.get("abstract"),
             "authors": [{"_id": f"a{i}", "name": n, "hidden": False} for i, n in enumerate(e.get("authors") or [])],
             "publishedAt": f"{e['published_on']:%Y-%m-%d}T17:08:18.000Z" if e.get("published_on") else None,
             "upvotes": e.get("upvotes"), "discussionId": "d1", "ai_keywords": e.get("ai_keywords")}
    if e.get("organization"):
        paper["organization"] = {"_id": "o1", "name": e["organization"], "fullname": e.get("organization_name")}
    return {"paper": {k: v for k, v in paper.items() if v is not None}, "numComments": e.get("comments", 0),
            "title": e["title"], "thumbnail": "https://example.invalid/t.png", "isAuthorParticipating": False}


def html_page(items: list[dict], date: str, key: str = "dailyPapers") -> str:
    """A papers page with its listing in the Svelte hydration attribute."""
    import html
    import json

    props = json.dumps({"periodType": "day", "dateString": date, key: items, "lastDate": date})
    return ("<!doctype html><html><head><title>Daily Papers - Hugging Face</title></head><body>"
            "<main><h1>Daily Papers</h1>"
            f'<div class="SVELTE_HYDRATER contents" data-target="DailyPapers" data-props="{html.escape(props)}">'
            "<section><article><h3>visible markup is not read</h3></article></section></div></main></body></html>")
