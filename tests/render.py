"""Render listing entries into the page layouts the parsers read (test helper)."""

from __future__ import annotations

import datetime as dt

HEADER = ["new", "", "Get trending papers in your email inbox!", "", "Subscribe", "", "Daily Papers", "",
          "byAK and the research community", ""]


def block_date(published: dt.date, captured: dt.date, upvotes: int | None) -> str:
    text = f"{published:%b} {published.day}"
    if published.year != captured.year:
        text += f", {published.year}"
    return text + (f" {upvotes}" if upvotes is not None else "")


def block_page(entries: list[dict], captured: dt.date, header_day: bool = True) -> str:
    """The block layout of a saved papers page; each entry: title, abstract, published_on, upvotes and
    author_count or organization (+ organization_name)."""
    lines = list(HEADER)
    if header_day:
        lines += [f"{captured:%b} {captured.day}", ""]
    for e in entries:
        lines += [e["title"], "", e.get("abstract") or "", ""]
        if e.get("organization"):
            lines.append(" ".join(p for p in (e["organization"], e.get("organization_name")) if p))
        else:
            lines.append(f"  • {e['author_count']} authors")
        lines += ["·", block_date(e["published_on"], captured, e.get("upvotes")), ""]
    return "\n".join(lines).rstrip("\n")
