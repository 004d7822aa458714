"""What runs the pipeline without an operator: the inbox sensor and the automation conditions."""

import os
import shutil
import time

import dagster as dg

from assets.definitions import captures_folder_sensor, defs
from assets.resources import DataDirResource
from conftest import SAMPLE_FILES

CHAIN = {"captures", "listings", "rejects", "papers", "sightings", "merges", "catalog", "release"}


def requested(result) -> set[str]:
    keys = [node.key for node in defs.get_repository_def().asset_graph.asset_nodes]
    return {k.to_user_string() for k in keys if result.get_num_requested(k)}


def settle(path, seconds=60):
    old = time.time() - seconds
    os.utime(path, (old, old))


def evaluate(data_dir, cursor=None):
    context = dg.build_sensor_context(cursor=cursor, resources={"datadir": DataDirResource(data_dir=str(data_dir))})
    result = captures_folder_sensor(context)
    return result, (result.cursor if isinstance(result, dg.SensorResult) else cursor)


def test_inbox_sensor_requests_a_run_for_new_settled_files_only(data_dir):
    result, cursor = evaluate(data_dir)
    assert isinstance(result, dg.SkipReason) and "no inbox folder" in result.skip_message
    inbox = data_dir / "inbox"
    inbox.mkdir(parents=True)
    for path in SAMPLE_FILES[:2]:
        settle(shutil.copy(path, inbox))
    result, cursor = evaluate(data_dir, cursor)
    (request,) = result.run_requests
    assert request.run_config["ops"]["captures"]["config"]["captures_dir"] == str(inbox)
    assert request.tags["papers/new_files"] == "2"

    # the run it asks for imports the files
    with dg.DagsterInstance.ephemeral() as instance:
        run = defs.resolve_job_def("papers_job").execute_in_process(run_config=request.run_config, instance=instance)
    assert run.success
    captures = [e for e in run.get_asset_materialization_events() if e.asset_key.to_user_string() == "captures"]
    assert captures[0].materialization.metadata["new_captures"].value == 2

    again, cursor = evaluate(data_dir, cursor)
    assert isinstance(again, dg.SkipReason)
    fresh = shutil.copy(SAMPLE_FILES[2], inbox)  # still being written, as far as anyone can tell
    waiting, cursor = evaluate(data_dir, cursor)
    assert isinstance(waiting, dg.SkipReason)
    settle(fresh)
    result, cursor = evaluate(data_dir, cursor)
    (second,) = result.run_requests
    assert second.tags["papers/new_files"] == "1" and second.run_key != request.run_key


def test_a_fetched_day_sets_the_whole_chain_off(data_dir):
    """(The runs automation starts gather the fetched pages only: never the bundled samples.)"""
    import datetime as dt

    from bench.render import api_item
    from bench.hub_server import HubServer, HubState

    day = [api_item({"title": "Automated paper", "abstract": "It arrived by itself.", "arxiv_id": "2603.00001",
                     "published_on": dt.date(2026, 3, 9), "upvotes": 1})]
    with dg.DagsterInstance.ephemeral() as instance:
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        job = defs.resolve_job_def("papers_job")
        samples = {"ops": {"captures": {"config": {"captures_dir": str(SAMPLE_FILES[0].parent)}}}}
        assert job.execute_in_process(instance=instance, run_config=samples).success
        idle = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        assert idle.total_requested == 0
        with HubServer(HubState({"2026-03-09": day})) as server:
            from assets.sources import HubResource
            from assets.sources import daily_papers

            fetched = dg.materialize([daily_papers],
                                     instance=instance, partition_key="2026-03-09",
                                     resources={"hub": HubResource(base_url=server.url),
                                                "datadir": DataDirResource(data_dir=str(data_dir))})
        assert fetched.success
        after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=idle.cursor)
        assert requested(after) == CHAIN
        keys = [dg.AssetKey(k) for k in sorted(CHAIN)]
        auto = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance, asset_selection=keys)
        (captures,) = [e for e in auto.get_asset_materialization_events() if e.asset_key.to_user_string() == "captures"]
        assert captures.materialization.metadata["new_captures"].value == 1  # the fetched page, no sample
        assert captures.materialization.metadata["folder"].value == ""


def test_settings_are_read_when_used_not_when_the_code_loads(data_dir, tmp_path, monkeypatch):
    """`defs` is loaded before these variables are set (at this module's import): the sensor and the
    release target still follow them, and the resources' config (what the UI shows) never holds them."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    settle(shutil.copy(SAMPLE_FILES[0], elsewhere))
    monkeypatch.setenv("PAPERS_INBOX", str(elsewhere))
    result, _ = evaluate(data_dir)
    assert result.run_requests[0].run_config["ops"]["captures"]["config"]["captures_dir"] == str(elsewhere)

    resources = defs.resources
    d = DataDirResource(data_dir=str(data_dir)).get()
    assert type(resources["release_target"].get(d)).__name__ == "LocalGitTarget"
    monkeypatch.setenv("PAPERS_HUB_REPO", "someone/their-papers")
    target = resources["release_target"].get(d)
    assert type(target).__name__ == "HubTarget" and target.repo_id == "someone/their-papers"
    monkeypatch.setenv("PAPERS_HUB_URL", "http://127.0.0.1:9")
    assert str(resources["hub"].client().base_url) == "http://127.0.0.1:9"
    shown = repr({name: r.model_dump() for name, r in resources.items()})
    assert "their-papers" not in shown and "127.0.0.1" not in shown and str(elsewhere) not in shown
