"""The dataset card (README.md of a release), its chart and the changelog, generated from the tables."""

from __future__ import annotations

import polars as pl

from pipeline import charts, dedup, schema

PRETTY_NAME = "Hugging Face Papers listings (curated)"

CONFIGS = {  # config name -> folder under data/; the first is the default
    "papers": "data/papers",
    "sightings": "data/sightings",
    "changes": "data/changes",
    "aliases": "data/aliases",
}


def size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return label
    return "10M<n<100M"


def card_data(n_papers: int, configs: list[str]):
    """The card's metadata (YAML header), built and checked by `huggingface_hub`: every config this
    version has files for, `papers` the default."""
    from huggingface_hub import DatasetCardData

    return DatasetCardData(
        pretty_name=PRETTY_NAME, license="other", language=["en"], size_categories=[size_category(n_papers)],
        tags=["papers", "arxiv"],
        configs=[{"config_name": name, **({"default": True} if name == "papers" else {}),
                  "data_files": [{"split": "train", "path": f"{CONFIGS[name]}/*.parquet"}]} for name in configs])


def _column_table(table: dict) -> str:
    rows = ["| column | type | meaning |", "|---|---|---|"]
    for column, dtype in table.items():
        rows.append(f"| `{column}` | {dtype} | {schema.DESCRIPTIONS.get(column, '')} |")
    return "\n".join(rows)


def chart(papers: pl.DataFrame) -> bytes:
    return charts.papers_per(papers, "%Y-%m", "Papers per publication month")


WHAT = {
    "papers": "one row per paper",
    "sightings": "every time a paper was seen on a page, with its upvotes then",
    "changes": "what this version added, changed and removed since the previous one",
    "aliases": "ids that turned out to name the same paper as another id, and the id that survives",
}


def render(version: str, papers: pl.DataFrame, sightings: pl.DataFrame, n_captures: int, configs: list[str],
           repo_id: str | None = None, chart_path: str | None = None) -> str:
    """The dataset card: `huggingface_hub`'s DatasetCard of `card_data` and the text below."""
    from huggingface_hub import DatasetCard

    load_from = repo_id or "<path to this folder>"
    hub_path = f"hf://datasets/{repo_id or '<user>/<repo>'}@{version}"
    picture = f"\n![Papers per publication month]({chart_path})\n" if chart_path else ""
    with_arxiv = papers.filter(pl.col("arxiv_id").is_not_null()).height
    doc = dedup.__doc__
    resolution = doc.split("Merge policy per column", 1)[0].strip()
    policy = "Merge policy per column" + doc.split("Merge policy per column", 1)[1].rstrip()
    rows = "\n".join(f"| `{name}`{' (default)' if name == 'papers' else ''} | {WHAT[name]} |" for name in configs)
    empty = [name for name in CONFIGS if name not in configs]
    absent = (f"\n\n{', '.join(f'`{n}`' for n in empty)}: empty in this version, so left out until it has rows."
              if empty else "")
    body = f"""
# {PRETTY_NAME}

Research papers listed on Hugging Face's papers pages (daily papers, search, saved pages), parsed,
validated and de-duplicated into one row per paper, with every sighting kept as provenance.

Version **{version}**: {papers.height} papers from {sightings.height} listings on {n_captures} captured
pages; {with_arxiv} papers have an arXiv id.
{picture}
## Configs

| config | what |
|---|---|
{rows}{absent}

## Load it

```python
from datasets import load_dataset

papers = load_dataset("{load_from}", revision="{version}")["train"]
sightings = load_dataset("{load_from}", "sightings", revision="{version}")["train"]
```

With SQL in DuckDB, straight from the Hub (`@{version}` pins the version; leave it out for the latest):

```sql
SELECT published_on, title, upvotes
FROM '{hub_path}/data/papers/*.parquet'
ORDER BY upvotes DESC LIMIT 10;
```

With Polars:

```python
import polars as pl

papers = pl.read_parquet("{hub_path}/data/papers/*.parquet")
```

Every version is a git tag `vYYYY.MM.DD` (`.1`, `.2`, ... for more releases on one day); `main`
is the latest. Each table is a few Parquet files: papers in the order they were first seen,
sightings in capture order, so a day's news lands in the last file and the files before it stay as
they were; their pages are cut at content-defined boundaries, so a file that does change shares
most of its bytes with the previous version's.

## Columns of `papers`

{_column_table(schema.PAPERS)}

## Columns of `sightings`

{_column_table(schema.SIGHTINGS)}

## How sightings become papers

{resolution}

{policy}

## License

The listings' titles and abstracts are the work of the papers' authors, under the licenses they
chose on arXiv; check each paper's license before reuse. The curation (ids, merges, tables) is
released under Apache-2.0.

## Files

`manifest.json` lists every file with its size and sha256, the row counts, the captures this
version was built from and the pipeline's stored tables it was read from; `CHANGELOG.md` says
what each version changed.
"""
    return str(DatasetCard(f"---\n{card_data(papers.height, configs).to_yaml()}\n---\n{body}"))


CHANGELOG_LISTED = 100  # papers named a kind of change; the `changes` config of the version has every one


def changelog_section(version: str, created_at: str, changes: pl.DataFrame, note: str | None = None) -> str:
    lines = [f"## {version} ({created_at})", ""] + ([f"**{note}**", ""] if note else [])
    for kind in ("added", "changed", "removed"):
        rows = changes.filter(pl.col("change") == kind)
        lines.append(f"### {kind.capitalize()}: {rows.height}")
        lines.append("")
        for row in rows.head(CHANGELOG_LISTED).iter_rows(named=True):
            detail = f" ({', '.join(row['columns'])})" if row["columns"] else ""
            if row["merged_into"]:
                detail = f" (now an alias of `{row['merged_into']}`)"
            lines.append(f"- `{row['paper_id']}` {row['title']}{detail}")
        if rows.height > CHANGELOG_LISTED:
            lines.append(f"- … and {rows.height - CHANGELOG_LISTED:,} more: the `changes` config of this version "
                         "lists every one")
        lines.append("")
    return "\n".join(lines)
