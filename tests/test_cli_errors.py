"""Tried as a new user would: every mistake a user can make, and every failure they can meet, is one
line on stderr naming the cause and the next step, with a non-zero exit and no traceback."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import SAMPLE_FILES
from bench.hub_repo_server import HubRepoServer

PAPERS = [sys.executable, "-m", "assets.cli"]


def papers(args, data_dir, **env):
    full = {**os.environ, "PAPERS_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(data_dir / "dagster"), **env}
    return subprocess.run(PAPERS + args, capture_output=True, text=True, env=full, timeout=300)


def one_line(done: subprocess.CompletedProcess, status: int | None = None) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode != 0 if status is None else done.returncode == status, done.stderr
    return lines[-1]


@pytest.mark.parametrize("args, expected", [
    (["scrape", "--from", "2026-13-01"], "'2026-13-01' is not a date (YYYY-MM-DD)"),
    (["scrape", "--from", "2020-01-01"], "2020-01-01 is outside the days of Daily Papers that can be fetched"),
    (["scrape", "--from", "2026-03-05", "--to", "2026-03-01"], "--to 2026-03-01 is before --from 2026-03-05"),
    (["scrape", "--to", "2026-03-01"], "--to needs --from"),
    (["scrape"], "say what to fetch"),
    (["run", "--captures", "/nonexistent/folder"], "/nonexistent/folder does not exist or is not a folder"),
    (["run", "--captured-at", "garbage"], "'garbage' is not an ISO-8601 time"),
    (["query", "SELECT 1", "--max-rows", "-3"], "'-3' is not a positive whole number"),
    (["ui", "--port", "http"], "'http' is not a positive whole number"),
    (["query", "SELEC title FROM papers"], 'syntax error at or near "SELEC" LINE 1: SELEC title FROM papers'),
    (["parse", "/"], "/: is a folder: name its files"),
    (["scrape", "--page", "ftp://example.org/papers"], "give an http(s) URL or a path on the Hub"),
])
def test_a_mistyped_argument_is_one_line_before_anything_starts(tmp_path, args, expected):
    done = papers(args, tmp_path / "data")
    assert expected in one_line(done, 2)
    assert not (tmp_path / "data" / "dagster").exists()  # nothing started


def test_a_data_directory_that_cannot_be_written_is_one_line():
    done = subprocess.run(PAPERS + ["run"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PAPERS_DATA_DIR": "/proc/papers-data"})
    assert "cannot write to the data directory /proc/papers-data" in one_line(done, 2)


def test_a_malformed_hub_repository_is_one_line_before_anything_starts(tmp_path):
    for command in (["run"], ["publish"], ["publish", "--dry-run"]):
        done = papers(command, tmp_path / "data", PAPERS_HUB_REPO="my org/papers!")
        assert "PAPERS_HUB_REPO='my org/papers!' is not a Hub repository id: give owner/name" in one_line(done, 2)
    assert not (tmp_path / "data" / "dagster").exists()


def test_an_empty_query_says_so(tmp_path):
    assert "the query is empty" in one_line(papers(["query", "  ;  "], tmp_path), 2)


def test_the_reader_of_parse_may_stop_early(tmp_path):
    process = subprocess.Popen(PAPERS + ["parse", *map(str, SAMPLE_FILES)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.stdout.readline()  # `| head -1`
    process.stdout.close()
    assert process.wait(120) == 0
    assert "Traceback" not in process.stderr.read()


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    data = tmp_path_factory.mktemp("ran") / "data"
    folder = data.parent / "captures"
    folder.mkdir()
    shutil.copy(SAMPLE_FILES[0], folder)
    assert papers(["run", "--captures", str(folder)], data).returncode == 0
    return data


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_dry_run_to_an_unreachable_hub_is_one_line(ran, tmp_path):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    done = papers(["publish", "--dry-run"], ran, PAPERS_HUB_REPO="user/papers", HF_ENDPOINT=endpoint,
                  HF_HUB_OFFLINE="0", HF_TOKEN="hf_unused", HF_HOME=str(tmp_path / "hf"))
    line = one_line(done, 1)
    assert f"{endpoint}/datasets/user/papers: cannot reach the Hub" in line and "check the network" in line


def test_a_refused_token_names_what_the_hub_said(ran, tmp_path):
    with HubRepoServer("hf_the_right_one", check_reads=True) as server:
        env = dict(PAPERS_HUB_REPO="user/papers", HF_ENDPOINT=server.url, HF_HUB_OFFLINE="0",
                   HF_TOKEN="hf_a_wrong_one", HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_XET="1")
        for command in (["publish", "--dry-run"], ["publish"]):
            line = one_line(papers(command, ran, **env), 1)
            assert "refused (401): Invalid credentials in Authorization header" in line, command
            assert "check HF_TOKEN" in line and "hf_a_wrong_one" not in line


def _session_processes(sid: int) -> list[int]:
    """The processes of session `sid` still alive: a zombie has stopped already, and waits only for
    init to reap it (these processes' parent is gone)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,sid=,stat="], capture_output=True, text=True).stdout
    return [int(pid) for pid, s, stat in (line.split() for line in out.splitlines())
            if int(s) == sid and not stat.startswith("Z")]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_papers_ui_stops_with_all_its_processes(tmp_path, signum):
    port = closed_port()
    process = subprocess.Popen(PAPERS + ["ui", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PAPERS_DATA_DIR": str(tmp_path / "data"),
                                               "DAGSTER_HOME": str(tmp_path / "data" / "dagster")})
    deadline = time.monotonic() + 120
    while True:  # until the webserver answers
        assert process.poll() is None, process.stderr.read()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
            break
        except OSError:
            assert time.monotonic() < deadline, "the UI did not come up"
            time.sleep(1)
    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    (dagster_dev,) = map(int, children)
    sid = os.getsid(dagster_dev)
    assert len(_session_processes(sid)) >= 3  # dagster dev, the webserver, the daemon, code servers
    process.send_signal(signum)
    assert process.wait(90) == 128 + signum
    stderr = process.stderr.read()
    assert "papers ui: stopped" in stderr and "Traceback" not in stderr.split("papers ui: stopped")[-1]
    assert _session_processes(sid) == []


def test_a_query_error_is_one_line_with_duckdbs_whole_message(ran):
    done = papers(["query", "SELECT nope FROM papers"], ran)
    assert done.stderr.count("\n") == 1
    line = one_line(done, 1)
    assert 'Referenced column "nope" not found' in line and "Candidate bindings" in line
