"""Generated corpora, repeatable from a seed, built from the bundled sample captures.

- `evalset`: labelled listings for measuring resolution: every base paper appears several times with
  realistic perturbations (case, white space, punctuation, LaTeX escapes, Unicode forms, a revised
  title, a truncated or revised abstract, with or without its arXiv id), plus hard negatives
  (another paper with the same title and a different abstract; a near title of a different paper).
- `listings_corpus`: N listings over many captures and sources for the speed benchmarks, with a
  known share of exact and near duplicates.

New distinct papers are made by recombining the samples' title words and abstract words.
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata

import polars as pl

from pipeline import parse
from pipeline.normalize import clean_text
from pipeline.paths import SAMPLE_CAPTURES, DataDir
from pipeline.sources.folder import import_folder

UTC = dt.timezone.utc
SOURCES = ["text_capture", "hf_daily_api", "hf_html", "hf_search_api"]


def base_papers() -> list[dict]:
    """The distinct papers of the sample captures."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = DataDir.resolve(tmp)
        listings, _ = parse.parse_captures(import_folder(data_dir, SAMPLE_CAPTURES, set()), data_dir.root)
    unique = listings.unique("title_key", keep="first", maintain_order=True)
    return unique.select("title", "abstract", "author_count", "organization", "published_on").to_dicts()


class Synth:
    """Distinct new papers from the samples' title and abstract words (word frequencies kept, so
    common words are common), which share no more phrasing than unrelated papers do."""

    def __init__(self, base: list[dict], rng: random.Random):
        self.rng = rng
        self.title_words = sorted({w for p in base for w in p["title"].split() if len(w) > 2})
        self.words = [w for p in base for w in (p["abstract"] or "").split()]
        self.count = 0

    def paper(self) -> dict:
        self.count += 1
        r = self.rng
        title = " ".join(r.sample(self.title_words, r.randint(5, 11)))
        abstract = " ".join(r.choices(self.words, k=r.randint(80, 220))) + "."
        return {"title": title, "abstract": abstract, "author_count": r.randint(1, 12), "organization": None,
                "published_on": dt.date(2023, 1, 1) + dt.timedelta(days=r.randint(0, 1000)),
                "arxiv_id": f"{23 + self.count // 1_200_000}{1 + self.count // 100_000 % 12:02d}.{self.count % 100_000:05d}"}


# --- perturbations: what the same paper looks like on another page, day or format ---------------

def _case(t, r):
    return r.choice([t.upper(), t.lower(), t.title()])


def _spaces(t, r):
    words = t.split(" ")
    i = r.randrange(len(words))
    words[i] = words[i] + r.choice(["  ", "\n", " \t"])
    return " ".join(words)


def _punct(t, r):
    return r.choice([t.replace(":", " -"), t.replace("-", " "), t + ".", t.replace(",", "")])


def _latex(t, r):
    return (t.replace("%", "\\%").replace("&", "\\&").replace("é", "\\'e").replace("ö", '\\"o')
            .replace("e", "\\'{e}", 1) if r.random() < 0.3 else t.replace("%", "\\%").replace("&", "\\&"))


def _unicode(t, r):
    if r.random() < 0.5:
        return unicodedata.normalize("NFD", t.replace("e", "é", 1)) if "é" not in t else unicodedata.normalize("NFD", t)
    return t.replace("fi", "ﬁ").replace("A", "Ａ", 1)


def _revise_title(t, r):
    words = t.split()
    choice = r.random()
    if choice < 0.4:
        return r.choice(["Towards ", "On ", "Revisiting "]) + t
    if choice < 0.7 and len(words) > 4:
        del words[r.randrange(1, len(words))]
        return " ".join(words)
    return t + r.choice([" (Extended Version)", ": A Study", " Revisited"])


def _truncate(a, r):
    words = a.split()
    keep = max(12, int(len(words) * r.uniform(0.5, 0.9)))
    return " ".join(words[:keep]) + r.choice(["...", "…", ""])


def _revise_abstract(a, r):
    words = a.split()
    for _ in range(r.randint(1, 4)):
        words[r.randrange(len(words))] = r.choice(["novel", "new", "robust", "efficient", "simple"])
    return " ".join(words)


TITLE_NOISE = [_case, _spaces, _punct, _latex, _unicode]


def sighting(paper: dict, r: random.Random, hard: bool, source: str | None = None) -> dict:
    """One listing of `paper`: light noise always, a revision or truncation sometimes."""
    title, abstract = paper["title"], paper["abstract"]
    for f in r.sample(TITLE_NOISE, r.randint(0, 2)):
        title = f(title, r)
    if hard:
        kind = r.choice(["revise_title", "truncate", "revise_abstract", "both"])
        if kind in ("revise_title", "both"):
            title = _revise_title(title, r)
        if kind in ("truncate", "both"):
            abstract = _truncate(abstract, r)
        if kind == "revise_abstract":
            abstract = _revise_abstract(abstract, r)
    if r.random() < 0.3:
        abstract = _latex(abstract, r)
    source = source or r.choice(SOURCES)
    api = source != "text_capture"
    return {"title": clean_text(title), "abstract": clean_text(abstract),
            "arxiv_id": paper.get("arxiv_id") if api and r.random() < 0.9 else None,
            "author_count": paper["author_count"], "organization": paper["organization"],
            "published_on": paper["published_on"], "published_on_basis": "api" if api else "explicit",
            "upvotes": r.randint(0, 300), "source": source}


def _frame(rows: list[dict]) -> pl.DataFrame:
    listings, _ = parse.to_frames(rows, [])
    return listings


def evalset(seed: int = 7, n_papers: int = 2000, max_sightings: int = 6, hard_share: float = 0.35,
            negatives_share: float = 0.15) -> pl.DataFrame:
    """Labelled listings (`label` = the true paper) for measuring precision and recall of resolution."""
    r = random.Random(seed)
    base = base_papers()
    synth = Synth(base, r)
    papers = [dict(p, arxiv_id=f"{2300 + i // 1000}.{i % 1000:05d}") for i, p in enumerate(base)]
    papers += [synth.paper() for _ in range(max(0, n_papers - len(papers)))]
    labelled = list(enumerate(papers))
    # Hard negatives: different papers with the same title, or a near title, and their own abstract.
    for label, p in list(labelled)[: int(len(labelled) * negatives_share)]:
        other = synth.paper()
        title = p["title"] if r.random() < 0.5 else _near_title(p["title"], r)
        labelled.append((len(labelled), dict(other, title=title)))
    rows = []
    start = dt.datetime(2026, 1, 1, tzinfo=UTC)
    for label, p in labelled:
        for k in range(r.randint(1, max_sightings)):
            rows.append(dict(sighting(p, r, hard=k > 0 and r.random() < hard_share), label=label,
                             captured_at=start + dt.timedelta(hours=r.randint(0, 24 * 300))))
    r.shuffle(rows)
    for i, row in enumerate(rows):
        row.update(capture_id=f"eval{i // 50:06d}", position=i % 50, listing_id=f"eval{i // 50:06d}:{i % 50}")
    labels = pl.DataFrame({"listing_id": [x["listing_id"] for x in rows], "label": [x["label"] for x in rows]})
    return _frame(rows).join(labels, on="listing_id")


def _near_title(title: str, r: random.Random) -> str:
    words = title.split()
    i = r.randrange(len(words))
    words[i] = r.choice(["Graph", "Vision", "Language", "Sparse", "Robust", "Causal", "Diffusion"])
    return " ".join(words)


def listings_corpus(n: int, seed: int = 11, dup_share: float = 0.6, near_share: float = 0.1,
                    per_capture: int = 100) -> pl.DataFrame:
    """`n` listings over n / per_capture captures: a share are re-sightings of earlier papers, some
    of those perturbed (near duplicates)."""
    r = random.Random(seed)
    synth = Synth(base_papers(), r)
    papers: list[dict] = []
    rows = []
    start = dt.datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(n):
        c = i // per_capture
        source = SOURCES[c % len(SOURCES)]  # one kind of page per capture
        if papers and r.random() < dup_share:
            p = papers[r.randrange(len(papers))]
            row = sighting(p, r, hard=r.random() < near_share / dup_share, source=source)
        else:
            p = synth.paper()
            papers.append(p)
            row = sighting(p, r, hard=False, source=source)
        row.update(capture_id=f"{c:064x}", position=i % per_capture, listing_id=f"{c:064x}:{i % per_capture}",
                   captured_at=start + dt.timedelta(minutes=c))
        rows.append(row)
    return _frame(rows)
