"""Text captures in the compact layout: another saved form of the papers search page.

    Get trending papers in your email inbox once a day!
    Get trending papers in your email inbox!
    SubscribeFirst Title            (the button's text glued to the first title)
    First abstract, on one line
    Second Title
    Second abstract

Exactly two lines a paper, no blank lines, no authors, dates or upvotes; the file may or may not end
with a newline. A blank line is an empty field, since the layout has no other blank lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pipeline.normalize import clean_text
from pipeline.parse.common import ParseContext, Reject, excerpt, lines as _lines

HEADER = ("Get trending papers in your email inbox once a day!", "Get trending papers in your email inbox!")
BUTTON = "Subscribe"


_TWO_LINES = re.compile(r"([^\r\n]*)(?:\r\n|\r|\n)([^\r\n]*)")  # the first two, as `_lines` cuts them


def looks_like(text: str) -> bool:
    head = _TWO_LINES.match(text)  # (every page is asked: its other lines are not cut up)
    return head is not None and (head[1].strip(), head[2].strip()) == HEADER


def parse(text: str, ctx: ParseContext) -> Iterator[dict | Reject]:
    body = _lines(text)[2:]
    # A last empty line is the final newline when it leaves whole pairs; otherwise it is an empty
    # abstract ("Title\n" at the end: the abstract line is there, and empty).
    if len(body) % 2 and body[-1] == "":
        body.pop()
    if body:
        body[0] = body[0].removeprefix(BUTTON)
    for i in range(0, len(body), 2):
        pair = body[i:i + 2]
        title = clean_text(pair[0])
        if len(pair) < 2:
            yield Reject("missing_abstract", "a title on the last line with no abstract after it", excerpt(pair[0]))
        elif title is None:
            yield Reject("missing_title", "an empty title line", excerpt(pair[1]))
        else:
            yield {"title": title, "abstract": clean_text(pair[1])}
