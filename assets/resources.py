"""Dagster resources: where the data directory is."""


import dagster as dg

from pipeline.paths import DataDir


class DataDirResource(dg.ConfigurableResource):
    """The data directory every asset reads and writes (`./data` unless `PAPERS_DATA_DIR` is set)."""

    data_dir: str | None = None

    def get(self) -> DataDir:
        return DataDir.resolve(self.data_dir)

