"""End to end against a local Hub: `papers run` publishes with the real `huggingface_hub`, and
researchers' `datasets.load_dataset(repo, revision=tag)` reads each version back (both pointed at the
server with HF_ENDPOINT, in their own processes, as users run them)."""

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from huggingface_hub import DatasetCard

from bench.render import block_page
from conftest import SAMPLES
from bench.hub_repo_server import HubRepoServer, git_oid

TOKEN = "hf_e2e_Secret_77ab19c3"
REPO = "user/papers"
PAPERS = str(Path(sys.executable).with_name("papers"))

# Every config datasets finds at each tag, loaded as a researcher would: rows per config, and the ids
# of the default one.
LOAD = """
import json, sys, datasets
out = {}
for tag in sys.argv[1:]:
    rows = {}
    for config in datasets.get_dataset_config_names("%s", revision=tag):
        rows[config] = datasets.load_dataset("%s", config, revision=tag, split="train").num_rows
    ids = sorted(datasets.load_dataset("%s", revision=tag, split="train")["paper_id"])
    out[tag] = {"rows": rows, "ids": ids}
print(json.dumps(out))
""" % (REPO, REPO, REPO)


@pytest.fixture
def hub(tmp_path):
    with HubRepoServer(TOKEN) as server:
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
        env.update(HF_ENDPOINT=server.url, HF_TOKEN=TOKEN, PAPERS_HUB_REPO=REPO, HF_HUB_DISABLE_XET="1",
                   HF_UPDATE_DOWNLOAD_COUNTS="0", HF_HOME=str(tmp_path / "hf_home"),
                   PAPERS_DATA_DIR=str(tmp_path / "data"), DAGSTER_HOME=str(tmp_path / "dagster"))
        server.env = env
        yield server


def run(hub, *args, ok=True):
    result = subprocess.run(args, env=hub.env, capture_output=True, text=True, timeout=300)
    hub.outputs = getattr(hub, "outputs", []) + [result.stdout, result.stderr]
    assert (result.returncode == 0) == ok, result.stderr[-3000:]
    return result


def changed_paths(repo, old, new):
    a, b = repo.commits[old], repo.commits[new]
    return sorted(p for p in b if p not in a or git_oid(a[p]) != git_oid(b[p]))


@pytest.mark.slow
def test_publish_versions_to_the_hub_and_load_each(hub, tmp_path):
    data = Path(hub.env["PAPERS_DATA_DIR"])
    run(hub, PAPERS, "run")
    repo = hub.repos[REPO]
    (v1,) = repo.tags
    v1_ids = sorted(pl.read_parquet(data / "tables" / "papers" / "*.parquet")["paper_id"])
    commits = len(repo.commits)

    run(hub, PAPERS, "run")  # nothing new: no commit
    assert len(repo.commits) == commits
    assert "nothing to publish" in run(hub, PAPERS, "publish", "--dry-run").stdout

    folder = tmp_path / "captures"
    shutil.copytree(SAMPLES, folder)
    (folder / "extra.txt").write_text(block_page([
        {"title": "Sparse Widgets for Everyone", "abstract": "We make widgets sparse.", "author_count": 2,
         "published_on": dt.date(2026, 6, 1), "upvotes": 3}],
        dt.date(2026, 6, 2)), encoding="utf-8")
    run(hub, PAPERS, "run", "--captures", str(folder))
    v2 = next(t for t in repo.tags if t != v1)
    v2_ids = sorted(pl.read_parquet(data / "tables" / "papers" / "*.parquet")["paper_id"])
    assert len(v2_ids) == len(v1_ids) + 1

    # one commit for v2, carrying exactly the files whose bytes changed
    old, new = repo.tags[v1], repo.tags[v2]
    assert repo.parents[new] == old and repo.branches["main"] == new
    assert sorted(hub.uploaded[-1]) == changed_paths(repo, old, new)
    assert {"README.md", "CHANGELOG.md", "manifest.json", "data/papers/train-00000-of-00001.parquet"} <= set(
        hub.uploaded[-1])

    # an empty day (a weekend) is an ordinary day: the run succeeds and publishes nothing
    empty = tmp_path / "empty_day"
    empty.mkdir()
    (empty / "2026-06-09.json").write_text("[]")
    assert "nothing published" in run(hub, PAPERS, "run", "--captures", str(empty)).stderr
    assert repo.branches["main"] == new and len(repo.commits) == commits + 1

    # a fresh data directory pointed at the repository, given one page of the four, would remove
    # most of the published papers: refused, and nothing reaches the Hub
    one = tmp_path / "one_page"
    one.mkdir()
    shutil.copy(sorted(SAMPLES.glob("*.txt"))[0], one)
    fresh = {**hub.env, "PAPERS_DATA_DIR": str(tmp_path / "fresh"), "DAGSTER_HOME": str(tmp_path / "fresh_dagster")}
    refused = subprocess.run([PAPERS, "run", "--captures", str(one)], env=fresh, capture_output=True, text=True,
                             timeout=300)
    hub.outputs += [refused.stdout, refused.stderr]
    assert refused.returncode == 1 and f"papers of {v2}: refused" in refused.stderr
    assert repo.branches["main"] == new and len(repo.commits) == commits + 1

    loaded = json.loads(run(hub, sys.executable, "-c", LOAD, v1, v2).stdout.strip().splitlines()[-1])
    assert {tag: got["ids"] for tag, got in loaded.items()} == {v1: v1_ids, v2: v2_ids}
    for tag in (v1, v2):  # every config the tag's card declares loads, with the rows its manifest counts
        files = repo.commits[repo.tags[tag]]
        declared = [c["config_name"] for c in DatasetCard(files["README.md"].decode()).data.configs]
        counts = json.loads(files["manifest.json"])["row_counts"]
        assert sorted(loaded[tag]["rows"]) == sorted(declared) and {"papers", "sightings"} <= set(declared)
        assert loaded[tag]["rows"] == {config: counts[config] for config in declared}

    # the token was sent to the configured server and written nowhere
    assert any(r["headers"].get("authorization") == f"Bearer {TOKEN}" for r in hub.requests)
    leaks = [o for o in hub.outputs if TOKEN in o]
    leaks += [str(p) for root in (data, Path(hub.env["DAGSTER_HOME"]), Path(hub.env["HF_HOME"]))
              for p in root.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    leaks += [path for tree in repo.commits.values() for path, content in tree.items() if TOKEN.encode() in content]
    assert leaks == []
