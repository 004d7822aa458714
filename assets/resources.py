"""Dagster resources: where the data directory is, and where releases are published."""


import dagster as dg

from pipeline import publish
from pipeline.paths import DataDir


class DataDirResource(dg.ConfigurableResource):
    """The data directory every asset reads and writes (`./data` unless `PAPERS_DATA_DIR` is set)."""

    data_dir: str | None = None

    def get(self) -> DataDir:
        return DataDir.resolve(self.data_dir)


class ReleaseTargetResource(dg.ConfigurableResource):
    """Where releases go: the Hub dataset repository `repo_id` when set (`PAPERS_HUB_REPO`), with the
    token read from `HF_TOKEN` when publishing (never part of the config, so never shown in the UI),
    else the local git repository `<data dir>/releases`."""

    repo_id: str | None = None

    def get(self, data_dir: DataDir) -> publish.Target:
        return publish.target(data_dir.releases, self.repo_id)
