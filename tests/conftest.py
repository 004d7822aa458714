import os
import shutil
from pathlib import Path

import pytest

# Nothing in the tests may reach the network or the user's caches.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "captures"
SAMPLE_FILES = sorted(SAMPLES.glob("*.txt"))


def pytest_collection_modifyitems(items):
    """The slow tests first, the longest (`slow(minutes=N)`) first of all: with two workers
    (`-n 2 --dist worksteal`) it then runs beside all the others instead of after them."""

    def minutes(item) -> float:
        mark = item.get_closest_marker("slow")
        return 0 if mark is None else mark.kwargs.get("minutes", 1)

    items.sort(key=minutes, reverse=True)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("PAPERS_DATA_DIR", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A fresh data directory, also named by PAPERS_DATA_DIR for code that reads the environment."""
    path = tmp_path / "data"
    monkeypatch.setenv("PAPERS_DATA_DIR", str(path))
    return path


@pytest.fixture
def captures_copy(tmp_path):
    """A writable copy of the sample captures, for tests that add files to the folder."""
    folder = tmp_path / "captures"
    shutil.copytree(SAMPLES, folder)
    return folder
