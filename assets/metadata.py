"""Metadata the Dagster UI shows for a table: row count, schema, a preview, summaries and charts."""

from __future__ import annotations

import base64

import dagster as dg
import polars as pl

PREVIEW_ROWS = 5
PREVIEW_CHARS = 60


def column_schema(frame: pl.DataFrame | pl.LazyFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.collect_schema().items()])


def preview(frame: pl.DataFrame | pl.LazyFrame, columns: list[str] | None = None) -> dg.MetadataValue:
    shown = frame.lazy().select(columns or frame.collect_schema().names()).head(PREVIEW_ROWS).collect()

    def cell(value) -> str:
        text = "" if value is None else str(value)
        text = text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in shown.iter_rows()]
    return dg.MetadataValue.md("\n".join(lines))


def table(frame: pl.DataFrame | pl.LazyFrame, path, columns: list[str] | None = None) -> dict:
    """A table's metadata; a lazy frame (a table's parts) is read only for what is shown."""
    return {
        "dagster/row_count": frame.lazy().select(pl.len()).collect().item(),
        "dagster/column_schema": column_schema(frame),
        "path": dg.MetadataValue.path(str(path)),
        "preview": preview(frame, columns),
    }


def counts_by(frame: pl.DataFrame | pl.LazyFrame, column: str) -> dict:
    return {str(k): int(v) for k, v in frame.lazy().group_by(column).len().sort(column).collect().iter_rows()}


def plot(png: bytes, caption: str) -> dg.MetadataValue:
    """A chart inline in the UI: Markdown with the PNG as a data URI (Dagster has no image type)."""
    return dg.MetadataValue.md(f"![{caption}](data:image/png;base64,{base64.b64encode(png).decode()})")


def summary(title: str, facts: dict) -> dg.MetadataValue:
    lines = [f"**{title}**", ""] + [f"- {name}: **{value}**" for name, value in facts.items()]
    return dg.MetadataValue.md("\n".join(lines))
