"""Small PNG charts (matplotlib's Agg canvas, no GUI) for the dataset card and the Dagster UI."""

from __future__ import annotations

import io

import polars as pl


def bars(labels: list[str], values: list[int], title: str, ylabel: str) -> bytes:
    from matplotlib.figure import Figure  # heavy: imported only when a chart is drawn

    fig = Figure(figsize=(8, 3), dpi=100)
    ax = fig.add_subplot()
    ax.bar(range(len(labels)), values, color="#ff9d00")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    step = max(1, len(labels) // 12)
    ax.set_xticks(range(0, len(labels), step), labels[::step], rotation=45, ha="right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})  # no version string: same data, same bytes
    return buffer.getvalue()


def papers_per(papers: pl.DataFrame, fmt: str, title: str, days: int | None = None) -> bytes:
    """Papers per publication period (`fmt`: "%Y-%m" for months, "%Y-%m-%d" for days); with `days`,
    only the papers of the last `days` calendar days up to the latest publication date."""
    dated = papers.filter(pl.col("published_on").is_not_null())
    if days:
        dated = dated.filter(pl.col("published_on") > pl.col("published_on").max() - pl.duration(days=days))
    counts = dated.group_by(period=pl.col("published_on").dt.strftime(fmt)).len().sort("period")
    return bars(counts["period"].to_list(), counts["len"].to_list(), title, "papers")


def upvotes_histogram(papers: pl.DataFrame) -> bytes:
    """Papers by upvotes, in power-of-two buckets (upvotes are heavy-tailed)."""
    bucket = (pl.when(pl.col("upvotes") <= 0).then(0)
              .otherwise(pl.col("upvotes").cast(pl.Float64).log(2).floor().cast(pl.Int32) + 1))
    counts = papers.filter(pl.col("upvotes").is_not_null()).group_by(b=bucket).len().sort("b")
    labels = ["0" if b == 0 else f"{2 ** (b - 1)}–{2 ** b - 1}" for b in counts["b"].to_list()]
    return bars(labels, counts["len"].to_list(), "Papers by upvotes", "papers")
