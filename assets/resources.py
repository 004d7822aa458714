"""Dagster resources: where the data directory is, and where releases are published.

The settings come from environment variables read through `dg.EnvVar` when a run or a sensor uses
them, not when the code loads: a changed variable takes effect without reloading the code location,
and the UI never shows its value. They are read with `get_value` rather than passed as config because
every one of them is optional, and Dagster refuses a run whose config names an unset `EnvVar`.
"""

from pathlib import Path

import dagster as dg

from pipeline import publish
from pipeline.paths import DataDir

INBOX = dg.EnvVar("PAPERS_INBOX")
HUB_REPO = dg.EnvVar("PAPERS_HUB_REPO")


class DataDirResource(dg.ConfigurableResource):
    """The data directory every asset reads and writes (`./data` unless `PAPERS_DATA_DIR` is set)."""

    data_dir: str | None = None

    def get(self) -> DataDir:
        return DataDir.resolve(self.data_dir)

    def inbox(self) -> Path:
        """The folder the inbox sensor watches: `PAPERS_INBOX`, else `<data dir>/inbox`."""
        return Path(INBOX.get_value() or self.get().root / "inbox")


class ReleaseTargetResource(dg.ConfigurableResource):
    """Where releases go: the Hub dataset repository `repo_id` when set (`PAPERS_HUB_REPO`), with the
    token read from `HF_TOKEN` when publishing (never part of the config, so never shown in the UI),
    else the local git repository `<data dir>/releases`."""

    repo_id: str | None = None

    def get(self, data_dir: DataDir) -> publish.Target:
        return publish.target(data_dir.releases, self.repo_id or HUB_REPO.get_value() or None)
