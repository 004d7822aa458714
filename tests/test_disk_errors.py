"""A full disk and a read-only disk, real ones: tmpfs mounts in a private mount namespace (`unshare`),
so that the kernel itself answers ENOSPC and EROFS (root ignores permission bits, not these). Each
failure is one line naming the cause and the next step, and the next run on a good disk goes on."""

import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from bench.render import block_page

pytestmark = pytest.mark.slow

PAPERS = f"{shlex.quote(sys.executable)} -m assets.cli"


def _can_mount() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


needs_mounts = pytest.mark.skipif(not _can_mount(), reason="no user and mount namespaces (unshare) here")


def in_own_mounts(script: str, **env) -> None:
    """`script` (sh) where its mounts are its own and vanish with it; it saves what the test reads."""
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-ec", script],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def ledger(data: Path) -> dict:
    return {name: entry.get("sha256") or [part["sha256"] for part in entry["parts"]]
            for name, entry in json.loads((data / "tables" / "ledger.json").read_text()).items()}


def tags(data: Path) -> list[str]:
    return sorted(p.name for p in (data / "releases" / ".git" / "refs" / "tags").iterdir())


def last_line(err: str) -> str:
    assert "Traceback" not in err and "[SQL" not in err, err
    return [line for line in err.splitlines() if line.strip()][-1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run on the samples on an ordinary disk, and the bytes it needed."""
    data = tmp_path_factory.mktemp("reference") / "data"
    env = {**os.environ, "PAPERS_DATA_DIR": str(data), "DAGSTER_HOME": str(data / "dagster")}
    assert subprocess.run([sys.executable, "-m", "assets.cli", "run"], env=env, capture_output=True,
                          timeout=300).returncode == 0
    used = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    return data, used


@needs_mounts
def test_a_full_disk_is_one_line_and_the_next_run_goes_on(reference, tmp_path):
    data, used = reference
    size_kb = used // 1024 + 4096
    # The disk fills at different moments of the run: early (the raw store), midway, and late (the
    # release and Dagster's own records after it).
    cases = {"early": used // 20, "midway": used * 2 // 5, "late": used * 4 // 5}
    script = "\n".join(f'''
        mount -t tmpfs -o size={size_kb}k tmpfs "$DISK"
        dd if=/dev/zero of="$DISK/filler" bs=1024 count={size_kb - free // 1024} 2>/dev/null || true
        PAPERS_DATA_DIR="$DISK/data" DAGSTER_HOME="$DISK/data/dagster" {PAPERS} run >/dev/null 2>"$OUT/{name}.err" \\
            && echo 0 > "$OUT/{name}.rc" || echo $? > "$OUT/{name}.rc"
        rm "$DISK/filler"
        PAPERS_DATA_DIR="$DISK/data" DAGSTER_HOME="$DISK/data/dagster" {PAPERS} run >/dev/null 2>"$OUT/{name}.next.err" \\
            && echo 0 > "$OUT/{name}.next.rc" || echo $? > "$OUT/{name}.next.rc"
        cp -a "$DISK/data" "$OUT/{name}.data"
        umount "$DISK"''' for name, free in cases.items())
    disk = tmp_path / "disk"
    disk.mkdir()
    in_own_mounts(script, DISK=str(disk), OUT=str(tmp_path))
    for name in cases:
        err = (tmp_path / f"{name}.err").read_text()
        assert (tmp_path / f"{name}.rc").read_text().strip() != "0", (name, err)
        line = last_line(err)
        assert f"no space left on the device holding {disk}/data" in line and "free some space and run again" in line
        assert (tmp_path / f"{name}.next.rc").read_text().strip() == "0", (tmp_path / f"{name}.next.err").read_text()
        again = tmp_path / f"{name}.data"
        assert ledger(again) == ledger(data) and tags(again) == tags(data), name


@needs_mounts
def test_a_read_only_disk_is_one_line_and_reading_still_works(reference, tmp_path):
    data, _ = reference
    news = tmp_path / "news"
    news.mkdir()
    (news / "new.txt").write_text(block_page([{"title": "Read Only Disks Considered", "abstract": "Kept.",
                                               "author_count": 1, "published_on": dt.date(2026, 6, 1)}],
                                             dt.date(2026, 6, 2)), encoding="utf-8")
    env = 'PAPERS_DATA_DIR="$DISK/data" DAGSTER_HOME="$DISK/data/dagster"'
    script = f'''
        mount -t tmpfs -o size=64m tmpfs "$DISK"
        cp -a "$REF" "$DISK/data"
        mount -o remount,ro "$DISK"
        {env} {PAPERS} run 2>"$OUT/run.err" && echo 0 >"$OUT/run.rc" || echo $? >"$OUT/run.rc"
        {env} {PAPERS} query "SELECT count(*) AS n FROM papers" >"$OUT/query.out" 2>&1
        {env} {PAPERS} publish --dry-run >"$OUT/dry.out" 2>&1 && echo 0 >"$OUT/dry.rc" || echo $? >"$OUT/dry.rc"
        mount -o remount,rw "$DISK"
        mount --bind "$DISK/data/releases" "$DISK/data/releases"
        mount -o remount,bind,ro "$DISK/data/releases"
        {env} {PAPERS} run --captures "$NEWS" >/dev/null 2>"$OUT/release.err" \\
            && echo 0 >"$OUT/release.rc" || echo $? >"$OUT/release.rc"
        umount "$DISK/data/releases"
        {env} {PAPERS} run --captures "$NEWS" >"$OUT/next.out" 2>&1 && echo 0 >"$OUT/next.rc" || echo $? >"$OUT/next.rc"
        cp -a "$DISK/data" "$OUT/data"
    '''
    disk = tmp_path / "disk"
    disk.mkdir()
    in_own_mounts(script, DISK=str(disk), OUT=str(tmp_path), REF=str(data), NEWS=str(news))

    def read(name):
        return (tmp_path / name).read_text()

    assert read("run.rc").strip() == "2"
    assert (f"cannot write to the data directory {disk}/data (Read-only file system): make it writable"
            in last_line(read("run.err")))
    papers = pl.read_parquet(data / "tables" / "papers" / "*.parquet").height
    assert f"│ {papers} │" in " ".join(read("query.out").split())
    assert read("dry.rc").strip() == "0" and "nothing to publish" in read("dry.out")

    # only the release repository read-only: the tables are committed, the release is refused in one line
    assert read("release.rc").strip() == "1"
    line = last_line(read("release.err"))
    assert f"Read-only file system: {disk}/data/releases" in line and "make it writable" in line
    assert read("next.rc").strip() == "0", read("next.out")
    assert len(tags(tmp_path / "data")) == len(tags(data)) + 1
