"""A plain, reasonable pandas baseline of the pipeline's core work, for side-by-side timing:
read every text capture in a folder (block layout), split it with Python, build a DataFrame,
normalise titles, drop duplicates, write Parquet. No validation, no provenance, no release.

Usage: python -m bench.baseline_pandas CAPTURES_DIR OUT_DIR (kept as the team gave it)
"""
import os
import re
import sys
import unicodedata

import pandas as pd

DATE = re.compile(r"^([A-Z][a-z]{2}) (\d{1,2})(?:, (\d{4}))?(?: (\d+))?$")
AUTH = re.compile(r"^\s*•\s*(\d+) authors?$")
MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def parse(text):
    paras = [p.strip("\n") for p in text.split("\n\n") if p.strip()]
    i = next(k for k, p in enumerate(paras) if p.startswith("byAK")) + 2
    rows = []
    while i + 2 < len(paras) + 1 and i < len(paras):
        title, abstract, meta = paras[i], paras[i + 1], paras[i + 2].split("\n")
        m = DATE.match(meta[2].strip())
        a = AUTH.match(meta[0])
        rows.append({"title": title, "abstract": abstract,
                     "author_count": int(a.group(1)) if a else None,
                     "organization": None if a else meta[0].split(" ", 1)[0],
                     "published_on": f"{m.group(3) or 2026}-{MONTHS[m.group(1)]:02d}-{int(m.group(2)):02d}",
                     "upvotes": int(m.group(4)) if m.group(4) else None})
        i += 3
    return rows


def key(t):
    return re.sub(r"[^\w]+", " ", unicodedata.normalize("NFKC", t).casefold()).strip()


def main(src, out):
    rows = []
    for f in sorted(os.listdir(src)):
        with open(os.path.join(src, f), encoding="utf-8") as fh:
            rows += parse(fh.read())
    df = pd.DataFrame(rows)
    df.to_parquet(os.path.join(out, "listings.parquet"), compression="zstd")
    df["title_key"] = df["title"].map(key)
    papers = df.drop_duplicates("title_key", keep="last")
    papers.to_parquet(os.path.join(out, "papers.parquet"), compression="zstd")
    print(f"{len(df)} listings, {len(papers)} papers")


if __name__ == "__main__":
    os.makedirs(sys.argv[2], exist_ok=True)
    main(sys.argv[1], sys.argv[2])
