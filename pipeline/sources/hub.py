"""Live sources on the Hub: daily papers by date (paged), paper search, and papers pages (HTML).

Every fetched page is stored raw under its sha256 and becomes a `captures` row; every request is a
row of the fetch log (`captured`, `unchanged` for a 304, or `failed` with its reason), so that a
rerun fetches only what is missing.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlencode

import polars as pl

from pipeline import parse, rawstore, schema
from pipeline.paths import DataDir
from pipeline.sources.http import Client, FetchError

DAILY_PATH = "/api/daily_papers"
SEARCH_PATH = "/api/papers/search"
PAGE_SIZE = 100
FIRST_DAY = dt.date(2023, 5, 4)  # the first day of Daily Papers

FETCH_LOG = {
    "key": pl.String,  # what was asked: source, date or query, page
    "url": pl.String,
    "fetched_at": schema.UTC_TS,
    "outcome": pl.String,  # captured | unchanged | failed
    "reason": pl.String,
    "attempts": pl.Int32,
    "capture_id": pl.String,
    "entries": pl.Int32,  # items on the page, for paging
    "etag": pl.String,
    "last_modified": pl.String,
}


def _json_list(body: bytes) -> None:
    """Raise ValueError unless `body` is a whole JSON array (a truncated one does not parse)."""
    if not isinstance(json.loads(body), list):
        raise ValueError("not a JSON array")


@dataclass
class Fetcher:
    """Fetches pages into the raw store, logging each request; `progress` hears about each page."""

    client: Client
    data_dir: DataDir
    log: pl.DataFrame  # the fetch log so far
    progress: Callable[[str], None] = lambda message: None
    captures: list[dict] = field(default_factory=list)
    entries: list[dict] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def last(self, key: str) -> dict | None:
        rows = self.log.filter((pl.col("key") == key) & (pl.col("outcome") != "failed"))
        return rows.sort("fetched_at").row(-1, named=True) if rows.height else None

    def fetch(self, key: str, path: str, params: dict | None, source: str, check=None,
              refresh: bool = False) -> dict:
        """One page; a page captured before is fetched again only with `refresh` (conditionally)."""
        before = self.last(key)
        if before is not None and not refresh:
            return before
        url = self.client.url(path) if "://" not in path else path
        now = dt.datetime.now(dt.timezone.utc)
        row = {"key": key, "url": url + ("?" + urlencode(params) if params else ""), "fetched_at": now}
        try:
            response = self.client.get(path, params, etag=before and before["etag"],
                                       last_modified=before and before["last_modified"], check=check)
        except FetchError as err:
            row.update(outcome="failed", reason=err.reason, attempts=self.client.attempts)
        else:
            row.update(attempts=response.attempts, etag=response.etag, last_modified=response.last_modified)
            if response.status == 304:
                row.update(outcome="unchanged", capture_id=before["capture_id"], entries=before["entries"])
            else:
                capture_id, raw_path = rawstore.put(self.data_dir, response.body)
                fmt = parse.detect(response.body)
                entries = len(json.loads(response.body)) if check is _json_list else None
                row.update(outcome="captured", capture_id=capture_id, entries=entries)
                self.captures.append({
                    "capture_id": capture_id, "source": source, "format": fmt, "origin": row["url"],
                    "params": json.dumps(params or {}, sort_keys=True), "captured_at": now,
                    "captured_at_basis": "fetched", "http_status": 200, "content_type": response.content_type,
                    "n_bytes": len(response.body), "raw_path": raw_path})
        self.entries.append(row)
        done = len(self.entries)
        failed = sum(r["outcome"] == "failed" for r in self.entries)
        rate = done / max(1e-9, time.monotonic() - self.started)
        self.progress(f"{key}: {row['outcome']}{' (' + row['reason'] + ')' if row.get('reason') else ''}; "
                      f"{done} pages done, {failed} failed, {rate:.2f} pages/s")
        return row

    def daily(self, date: dt.date, refresh: bool = False) -> None:
        """Every page of one day's daily papers, from p=0 until a page comes back short."""
        today = dt.datetime.now(dt.timezone.utc).date()
        if date > today:  # the API answers 400 for a day after today (UTC)
            self.progress(f"daily {date}: after today ({today} UTC), nothing to fetch")
            return
        page = 0
        while True:
            params = {"date": date.isoformat(), "limit": PAGE_SIZE, "p": page}
            row = self.fetch(f"daily/{date.isoformat()}/p{page}", DAILY_PATH, params, "hf_daily_api",
                             check=_json_list, refresh=refresh)
            if row["outcome"] == "failed" or row["entries"] is None or row["entries"] < PAGE_SIZE:
                return
            page += 1

    def search(self, query: str, refresh: bool = True) -> None:
        self.fetch(f"search/{query}", SEARCH_PATH, {"q": query}, "hf_search_api", check=_json_list, refresh=refresh)

    def pages(self, urls: Iterable[str], refresh: bool = True) -> None:
        for url in urls:
            params = {"date": url.rsplit("/papers/date/", 1)[1][:10]} if "/papers/date/" in url else {}
            self.fetch(f"page/{url}", url, params or None, "hf_html", refresh=refresh)

    def results(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The new `captures` rows and the fetch log rows of this run."""
        return schema.conform(self.captures, schema.CAPTURES), schema.conform(self.entries, FETCH_LOG)
