"""Generate a large corpus of text captures (block layout, plus some compact-layout pages) from the
seed captures, for side-by-side timing of the pipeline against baseline_pandas.py (beside this file).

Each generated paper is a seed paper with a numbered title suffix and a shuffled abstract, so the
corpus has N distinct papers; each paper is listed on `--dups` pages on average (exact duplicates).
Usage: python -m bench.gencorpus OUT_DIR N_LISTINGS [--seed S] [--dups D] [--per-page P]
(the team's workload generator, kept here as it was given; the seed captures are the bundled samples)
Prints the number of listings and distinct papers written.
"""
import argparse
import os
import random
import re

META_DATE = re.compile(r"^([A-Z][a-z]{2}) (\d{1,2})(?:, (\d{4}))?(?: (\d+))?$")
AUTHORS = re.compile(r"^\s*•\s*(\d+) authors?$")


def parse_blocks(text):
    paras = [p.strip("\n") for p in text.split("\n\n") if p.strip()]
    # header: everything up to and including the page date line after "byAK and the research community"
    i = 0
    while i < len(paras) and not paras[i].startswith("byAK"):
        i += 1
    i += 2
    out = []
    while i + 2 < len(paras) + 1 and i < len(paras):
        title, abstract, meta = paras[i], paras[i + 1], paras[i + 2]
        lines = meta.split("\n")
        assert lines[1].strip() == "·", meta
        m = META_DATE.match(lines[2].strip())
        assert m, meta
        a = AUTHORS.match(lines[0])
        rec = {"title": title, "abstract": abstract,
               "author_count": int(a.group(1)) if a else None,
               "organization": None if a else lines[0].split(" ", 1)[0],
               "month": m.group(1), "day": int(m.group(2)),
               "year": int(m.group(3)) if m.group(3) else None,
               "upvotes": int(m.group(4)) if m.group(4) else None}
        out.append(rec)
        i += 3
    return out



MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def block_entry(p):
    meta = f"  • {p['authors']} authors" if p["org"] is None else p["org"]
    date = f"{MONTHS[p['m'] - 1]} {p['d']}, {p['y']}" + (f" {p['up']}" if p["up"] else "")
    return f"{p['title']}\n\n{p['abstract']}\n\n{meta}\n·\n{date}\n\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("n", type=int)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dups", type=float, default=2.0)
    ap.add_argument("--per-page", type=int, default=50)
    ap.add_argument("--page-day", default="Nov 20", help="the day every page's header shows")
    a = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    seeds = []
    samples = os.path.join(here, "..", "samples", "captures")
    for f in sorted(os.listdir(samples)):
        if f.endswith(".txt"):
            seeds += parse_blocks(open(os.path.join(samples, f), encoding="utf-8").read())
    rng = random.Random(a.seed)
    n_papers = max(1, int(a.n / a.dups))
    papers = []
    for i in range(n_papers):
        s = rng.choice(seeds)
        words = s["abstract"].split(" ")
        rng.shuffle(words)
        papers.append({"title": f"{s['title']} (variant {i})", "abstract": " ".join(words),
                       "authors": rng.randint(1, 12), "org": rng.choice([None] * 9 + ["ACME-Lab ACME Research Lab"]),
                       "y": rng.randint(2019, 2025), "m": rng.randint(1, 12), "d": rng.randint(1, 28),
                       "up": rng.choice([None, None, rng.randint(1, 300)])})
    listings = [papers[i % n_papers] for i in range(a.n)]
    rng.shuffle(listings)
    os.makedirs(a.out, exist_ok=True)
    header = ("new\n\nGet trending papers in your email inbox!\n\nSubscribe\n\nDaily Papers\n\n"
              f"byAK and the research community\n\n{a.page_day}\n\n")
    for k in range(0, len(listings), a.per_page):
        page = listings[k:k + a.per_page]
        with open(os.path.join(a.out, f"page_{k // a.per_page:07d}.txt"), "w", encoding="utf-8") as fh:
            fh.write(header + "".join(block_entry(p) for p in page))
    print(f"{len(listings)} listings, {len({p['title'] for p in listings})} papers, "
          f"{(len(listings) + a.per_page - 1) // a.per_page} pages")


if __name__ == "__main__":
    main()
