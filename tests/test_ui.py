"""The operator's Dagster, as operators use it: `dagster dev` on workspace.yaml, driven through its
GraphQL API and, in headless Chromium (Debian's package), through the UI itself. The screenshots
are kept in `test-artifacts/`."""

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

ARTIFACTS = ROOT / "test-artifacts"
DAY = "2026-03-09"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""

RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) { ... on Run { status tags { key value } } }
}"""

MATERIALIZATIONS = """
query Materializations($path: [String!]!, $partitions: [String!]) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset {
      assetMaterializations(partitions: $partitions, limit: 1) {
        runId partition
        metadataEntries {
          label
          ... on IntMetadataEntry { intValue }
          ... on MarkdownMetadataEntry { mdStr }
          ... on JsonMetadataEntry { jsonString }
          ... on TableSchemaMetadataEntry { schema { columns { name type } } }
        }
      }
    }
  }
}"""

CHECKS = """
query Checks($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    ... on AssetNode {
      assetChecksOrError {
        ... on AssetChecks {
          checks { name blocking executionForLatestMaterialization { status evaluation { success } } }
        }
      }
    }
  }
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dagster:
    def __init__(self, url: str):
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=60)

    def gql(self, query: str, **variables) -> dict:
        response = self.http.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def launch(self, job: str, tags: dict | None = None, run_config: dict | None = None) -> str:
        params = {"selector": {"repositoryLocationName": "papers", "repositoryName": "__repository__",
                               "jobName": job},
                  "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
                  "runConfigData": run_config or {}}
        result = self.gql(LAUNCH, params=params)["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return result["run"]["runId"]

    def wait(self, run_id: str, timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.gql(RUN, runId=run_id)["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(1)
        raise TimeoutError(f"run {run_id} still {status}")

    def latest(self, asset: str, partition: str | None = None) -> dict:
        found = self.gql(MATERIALIZATIONS, path=[asset], partitions=[partition] if partition else None)
        (materialization,) = found["assetOrError"]["assetMaterializations"]
        return materialization


@pytest.fixture(scope="module")
def dagster(tmp_path_factory):
    """`dagster dev` on workspace.yaml with a fresh instance and data directory; the live sources
    point at a local Hub that serves one day of daily papers."""
    from bench.render import api_item
    from assets.cli import DAGSTER_SETTINGS
    from bench.hub_server import HubServer, HubState

    day = [api_item({"title": f"Operator paper {i}", "abstract": f"What operators see, part {i}.",
                     "arxiv_id": f"2603.{i:05d}", "published_on": dt.date(2026, 3, 9), "upvotes": 10 + i})
           for i in range(3)]
    tmp = tmp_path_factory.mktemp("ui")
    home = tmp / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_SETTINGS)  # as `papers` writes it
    port = free_port()
    with HubServer(HubState({DAY: day})) as hub:
        env = {**os.environ, "DAGSTER_HOME": str(home), "PAPERS_DATA_DIR": str(tmp / "data"),
               "PAPERS_HUB_URL": hub.url, "PAPERS_DAILY_START": "2026-03-01"}
        log = open(tmp / "dagster-dev.log", "wb")
        process = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-w", str(ROOT / "workspace.yaml"),
                                    "-h", "127.0.0.1", "-p", str(port)], cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        client = Dagster(f"http://127.0.0.1:{port}")
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if client.http.get("/server_info").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, (tmp / "dagster-dev.log").read_text()
                time.sleep(1)
            yield client
        finally:
            os.killpg(process.pid, 15)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
            log.close()


@pytest.fixture(scope="module")
def runs(dagster):
    """A daily partition fetched, then the whole job, both launched through GraphQL."""
    scrape = dagster.launch("daily_scrape_job", {"dagster/partition": DAY})
    assert dagster.wait(scrape) == "SUCCESS"
    # as an operator would: the launchpad's config names the folder to import (the bundled samples)
    main = dagster.launch("papers_job", run_config={"ops": {"captures": {"config": {
        "captures_dir": str(ROOT / "samples" / "captures")}}}})
    assert dagster.wait(main) == "SUCCESS"
    return {"scrape": scrape, "main": main}


def entries(materialization: dict) -> dict:
    return {e["label"]: e for e in materialization["metadataEntries"]}


def test_graphql_materializes_a_partition_with_metadata_and_checks(dagster, runs):
    tags = {t["key"]: t["value"] for t in dagster.gql(RUN, runId=runs["scrape"])["runOrError"]["tags"]}
    assert tags["dagster/partition"] == DAY
    fetched = dagster.latest("daily_papers", DAY)
    assert fetched["runId"] == runs["scrape"] and fetched["partition"] == DAY
    assert entries(fetched)["new_captures"]["intValue"] == 1

    papers = entries(dagster.latest("papers"))
    assert papers["dagster/row_count"]["intValue"] == 165 + 3  # the samples and the fetched day
    assert {c["name"] for c in papers["dagster/column_schema"]["schema"]["columns"]} >= {"paper_id", "title"}
    assert "Operator paper" in papers["preview"]["mdStr"] or papers["preview"]["mdStr"].count("|") > 10
    assert papers["upvotes"]["mdStr"].startswith("![papers by upvotes](data:image/png;base64,")
    assert "papers from" in papers["summary"]["mdStr"]
    release = entries(dagster.latest("release"))
    assert release["version"] and release["commit"]

    for asset, check in (("listings", "listings_contract"), ("papers", "papers_contract")):
        node = dagster.gql(CHECKS, path=[asset])["assetNodeOrError"]["assetChecksOrError"]["checks"]
        (found,) = [c for c in node if c["name"] == check]
        assert found["blocking"] is True
        assert found["executionForLatestMaterialization"]["status"] == "SUCCEEDED"
        assert found["executionForLatestMaterialization"]["evaluation"]["success"] is True


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (tests/install_browser.py does it)")
def test_the_ui_shows_every_asset_and_a_materialization_s_metadata(dagster, runs):
    from playwright.sync_api import expect, sync_playwright

    from assets.definitions import defs

    groups: dict[str, list[str]] = {}
    for node in defs.get_repository_def().asset_graph.asset_nodes:
        groups.setdefault(node.group_name, []).append(node.key.to_user_string())
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1800, "height": 1100})
        # Dagster's "Join the Dagster community" dialog opens on a first visit at a moment of its
        # choosing and covers the page: an operator skips it, and so does the test, whenever it shows.
        page.add_locator_handler(page.get_by_text("Join the Dagster community"),
                                 lambda: page.get_by_role("button", name="Skip").click())
        page.goto(f"{dagster.url}/asset-groups", wait_until="networkidle")
        for group in groups:  # the global lineage: one box a stage
            expect(page.get_by_text(group, exact=True).first).to_be_visible(timeout=30_000)
        skip = page.get_by_role("button", name="Skip")  # Dagster's newsletter prompt on a new instance
        if skip.count():
            skip.click()
        page.screenshot(path=str(ARTIFACTS / "lineage.png"))
        for group, names in sorted(groups.items()):  # each stage's graph: every asset a node
            page.goto(f"{dagster.url}/locations/papers/asset-groups/{group}/lineage", wait_until="networkidle")
            for name in names:
                expect(page.get_by_text(name, exact=True).first).to_be_visible(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / f"lineage-{group}.png"))

        page.goto(f"{dagster.url}/assets/papers?view=events", wait_until="networkidle")
        for label in ("duplicates_merged", "summary", "upvotes"):
            expect(page.get_by_text(label, exact=True).first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "papers-events.png"), full_page=True)
        page.get_by_role("row").filter(has_text="upvotes").get_by_text("Show Markdown").click()
        expect(page.get_by_role("img", name="papers by upvotes")).to_be_visible(timeout=30_000)
        page.wait_for_timeout(1000)  # the dialog fades in
        page.screenshot(path=str(ARTIFACTS / "papers-upvotes-plot.png"))
        browser.close()
    assert (ARTIFACTS / "papers-events.png").stat().st_size > 10_000
