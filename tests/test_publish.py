"""Both release targets through the same steps: the local git repository and a Hub dataset repo
(the real `huggingface_hub` client against `hub_repo_server`)."""

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys

import polars as pl
import pytest

from bench.hub_repo_server import HubRepoServer
from pipeline import publish, release, schema

TOKEN = "hf_test_Secret_4f9c2a"
NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.timezone.utc)


SIGHTINGS = schema.conform([{"paper_id": "p1", "listing_id": "c1:0", "capture_id": "c1",
                             "captured_at": NOW, "source": "text_capture", "position": 0, "upvotes": 1}],
                           schema.SIGHTINGS)


def tables(*papers, aliases=()):
    rows = [{"paper_id": pid, "title": title, "upvotes": up, "published_on": month, "n_sightings": 1}
            for pid, title, up, month in papers]
    return {"papers": schema.conform(rows, schema.PAPERS), "sightings": SIGHTINGS,
            "aliases": schema.conform([{"alias_id": a, "paper_id": p} for a, p in aliases], schema.ALIASES)}


V1 = tables(("p1", "One", 1, dt.date(2026, 1, 5)), ("p2", "Two", 2, dt.date(2026, 2, 5)),
            ("p3", "Three", 3, dt.date(2026, 3, 5)), aliases=[("p0", "p1")])
V2 = tables(("p1", "One", 1, dt.date(2026, 1, 5)), ("p2", "Two", 9, dt.date(2026, 2, 5)))  # p2 changed, p3 gone
SHARD = "train-00000-of-00001.parquet"  # one file a table, for so few rows


@pytest.fixture(params=["local", "hub"])
def target(request, tmp_path, monkeypatch):
    if request.param == "local":
        yield publish.LocalGitTarget(tmp_path / "releases")
        return
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # the session is offline elsewhere
    with HubRepoServer(TOKEN) as server:
        hub = publish.HubTarget("user/papers", TOKEN, server.url)
        hub.server = server
        yield hub


def release_once(target, data, now=NOW):
    current = publish.latest(target)
    # V2 removes a paper on purpose: these tests are about the publishing, not the removal guard
    prepared = publish.prepare(target, current, data, schema.empty(schema.CAPTURES), now, allow_removals=True)
    return None if prepared is None else publish.publish(target, prepared, current)


def test_versions_read_back_exactly_and_only_changed_files_are_sent(target):
    first = release_once(target, V1)
    assert first.version == "v2026.11.22" and target.tags() == {first.version: first.commit}
    assert {f"data/papers/{SHARD}", f"data/sightings/{SHARD}", f"data/aliases/{SHARD}", "README.md",
            release.CHART} <= set(first.uploaded) and first.deleted == []
    assert release_once(target, V1) is None  # nothing changed: nothing published

    second = release_once(target, V2)
    assert second.version == "v2026.11.22.1"
    # the sightings are byte-identical: not sent; the papers changed; no aliases left: file and config go
    assert f"data/sightings/{SHARD}" not in second.uploaded
    assert f"data/papers/{SHARD}" in second.uploaded
    assert second.deleted == [f"data/aliases/{SHARD}"]
    if isinstance(target, publish.HubTarget):
        assert target.server.uploaded[-1] == second.uploaded  # what the server received

    for version, expected in ((first.version, V1), (second.version, V2)):
        manifest = json.loads(target.read("manifest.json", version))
        read = release.Tables(manifest, lambda path, v=version: target.read(path, v))
        assert read["papers"].equals(release.canonical("papers", expected["papers"]))
    changes = pl.read_parquet(target.read(f"data/changes/{SHARD}", second.version))
    assert sorted(zip(changes["paper_id"], changes["change"])) == [("p2", "changed"), ("p3", "removed")]
    assert "## v2026.11.22.1" in target.read("CHANGELOG.md", "main").decode().split("## v2026.11.22 (")[0]
    card = target.read("README.md", second.version).decode()
    assert "- config_name: papers\n  default: true" in card and "- config_name: changes" in card
    assert "- config_name: aliases" in target.read("README.md", first.version).decode()
    assert "- config_name: aliases" not in card
    assert f"![Papers per publication month]({release.CHART})" in card
    assert target.read(release.CHART, second.version).startswith(b"\x89PNG")
    if isinstance(target, publish.HubTarget):
        assert 'load_dataset("user/papers", revision="v2026.11.22.1")' in card
        assert "FROM 'hf://datasets/user/papers@v2026.11.22.1/data/papers/*.parquet'" in card


def test_a_publisher_whose_parent_moved_fails_and_leaves_the_repo_as_it_was(target):
    release_once(target, V1)
    stale = publish.latest(target)  # this publisher reads main ...
    winner = release_once(target, V2)  # ... another publishes first
    tags_before, head_before = target.tags(), target.head()
    late = publish.prepare(target, stale, tables(("p9", "Nine", 1, dt.date(2026, 4, 1))),
                           schema.empty(schema.CAPTURES), NOW, allow_removals=True)
    with pytest.raises(publish.PublishConflict, match="moved") as error:
        publish.publish(target, late, stale)
    assert TOKEN not in str(error.value)
    assert target.head() == head_before == winner.commit and target.tags() == tags_before
    assert "p9" not in pl.read_parquet(target.read(f"data/papers/{SHARD}", "main"))["paper_id"].to_list()


def test_a_version_committed_but_not_tagged_is_tagged_by_the_next_run(target):
    release_once(target, V1)
    current = publish.latest(target)
    prepared = publish.prepare(target, current, V2, schema.empty(schema.CAPTURES), NOW, allow_removals=True)
    uploads, deletes = publish.plan(prepared, current.manifest)
    commit = target.commit(uploads, deletes, prepared.message, current.head)  # the run stops here
    assert prepared.version not in target.tags()
    assert publish.finish_interrupted(target, publish.latest(target)) == prepared.version
    assert target.tags()[prepared.version] == commit
    assert release_once(target, V2) is None  # and the data are not published twice


def checked_out(target: publish.LocalGitTarget, version: str) -> bool:
    """Whether the work tree holds exactly the files of `version`, byte for byte, and git sees
    nothing changed, staged or untracked."""
    from dulwich import porcelain

    manifest = json.loads(target.read("manifest.json", version))
    expected = {path: info["sha256"] for path, info in manifest["files"].items()}
    expected["manifest.json"] = hashlib.sha256(target.read("manifest.json", version)).hexdigest()
    present = {p.relative_to(target.path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
               for p in target.path.rglob("*") if p.is_file() and ".git" not in p.relative_to(target.path).parts}
    status = porcelain.status(str(target.path))
    return (present == expected and status.unstaged == [] and status.untracked == []
            and not any(status.staged.values()))


def test_the_work_tree_follows_main_and_one_left_behind_is_put_right(tmp_path):
    target = publish.LocalGitTarget(tmp_path / "releases")
    first = release_once(target, V1)
    assert checked_out(target, first.version)
    papers = tmp_path / "releases" / f"data/papers/{SHARD}"
    papers.write_bytes(b"edited")  # by hand: reading the version still gives its own bytes
    committed = json.loads(target.read("manifest.json", first.version))["files"][f"data/papers/{SHARD}"]
    assert hashlib.sha256(target.read(f"data/papers/{SHARD}", first.version)).hexdigest() == committed["sha256"]
    # A work tree left behind (as by a run killed before its checkout), and changed by hand.
    (tmp_path / "releases" / ".git" / "papers-checkout").write_text("an earlier commit")
    (tmp_path / "releases" / "stray.txt").write_text("not released")
    outside = tmp_path / "outside.md"
    outside.write_text("not the repository's")
    (tmp_path / "releases" / "README.md").unlink()
    (tmp_path / "releases" / "README.md").symlink_to(outside)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(tmp_path / "releases" / "data" / "sightings", elsewhere)
    (tmp_path / "releases" / "data" / "sightings").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / SHARD).write_bytes(b"edited elsewhere")
    target.repair()
    assert checked_out(target, first.version)
    # the links were replaced, not written through
    assert outside.read_text() == "not the repository's" and (elsewhere / SHARD).read_bytes() == b"edited elsewhere"
    second = release_once(target, V2)  # changes the papers, drops the aliases
    assert checked_out(target, second.version)
    assert not (tmp_path / "releases" / f"data/aliases/{SHARD}").exists()


def test_a_file_the_checkout_wrote_is_read_unhashed_until_written_again(tmp_path, monkeypatch):
    """Reading the version checked out takes a file of the work tree as its blob without hashing it
    while `stat` says nothing wrote it since the checkout; written again, even to its size and
    modification time, it is hashed, found not to be the blob, and the blob is read instead."""
    from dulwich.objects import Blob

    target = publish.LocalGitTarget(tmp_path / "releases")
    first = release_once(target, V1)
    name = f"data/papers/{SHARD}"
    committed = json.loads(target.read("manifest.json", first.version))["files"][name]["sha256"]
    hashed = []
    from_string = Blob.from_string
    monkeypatch.setattr(Blob, "from_string", staticmethod(lambda data: hashed.append(len(data)) or from_string(data)))
    assert hashlib.sha256(target.read(name, first.version)).hexdigest() == committed
    assert hashed == []
    path = target.path / name
    before = path.stat()
    path.write_bytes(b"x" * before.st_size)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert hashlib.sha256(target.read(name, first.version)).hexdigest() == committed
    assert hashed == [before.st_size]


def test_hub_publishing_without_a_token_says_so(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with HubRepoServer(TOKEN) as server:
        anonymous = publish.HubTarget("user/papers", None, server.url)
        with pytest.raises(publish.PublishError, match="HF_TOKEN is not set"):
            release_once(anonymous, V1)
        wrong = publish.HubTarget("user/papers", "hf_wrong", server.url)
        with pytest.raises(publish.PublishError, match="401") as error:
            release_once(wrong, V1)
        assert "hf_wrong" not in str(error.value)
        assert "Invalid credentials" in str(error.value)  # what the Hub said, not only the status
        assert server.repos == {}


@pytest.mark.skipif(shutil.which("git") is None, reason="packing needs the git binary")
def test_the_local_repository_is_repacked_once_its_loose_files_outweigh_its_packs(tmp_path):
    """Files of random bytes (which neither zlib nor deltas shrink): the first version is packed at
    once; a second, smaller than the pack, stays loose; a third, which takes the loose files past
    the pack's size, is packed with everything."""
    target = publish.LocalGitTarget(tmp_path / "releases")
    objects = tmp_path / "releases" / ".git" / "objects"

    def loose() -> set[str]:
        return {f.parent.name + f.name for d in objects.glob("[0-9a-f][0-9a-f]") for f in d.iterdir()}

    def publish_version(n: int, files: dict[str, bytes]) -> str:
        commit = target.commit(files, [], f"v{n}", target.head())
        target.tag(f"v{n}", commit, f"v{n}")
        return commit

    publish_version(1, {"a.bin": os.urandom(200_000)})
    assert loose() == set() and len(list((objects / "pack").glob("*.pack"))) == 1
    second = publish_version(2, {"b.bin": os.urandom(80_000)})
    assert second in loose()  # the commit, its tree, its blob and its tag: about 80 kB, under the pack's 200 kB
    publish_version(3, {"c.bin": os.urandom(150_000)})  # 230 kB loose now
    assert loose() == set()
    assert target.read("b.bin", second) is not None and target.read("a.bin", target.head()) is not None


@pytest.mark.skipif(shutil.which("git") is None, reason="packing needs the git binary")
def test_a_kill_between_writing_the_new_pack_and_removing_the_old_leaves_every_version(tmp_path):
    """The process killed once git has written the new pack and before the old pack and loose files
    are removed: the repository holds every version, and the next repack leaves one pack."""
    path = tmp_path / "releases"
    first, second, third = (os.urandom(size) for size in (100_000, 150_000, 400_000))
    (tmp_path / "1.bin").write_bytes(first)
    (tmp_path / "2.bin").write_bytes(second)  # more than the first version's pack: packed at once
    script = (f"import os; from pathlib import Path; from pipeline import publish\n"
              f"target = publish.LocalGitTarget(Path({str(path)!r}))\n"
              f"for n in (1, 2):\n"
              f"    os.environ['PAPERS_FAULT'] = 'release:compact:packed' if n == 2 else ''\n"
              f"    data = Path({str(tmp_path)!r}, f'{{n}}.bin').read_bytes()\n"
              f"    commit = target.commit({{'a.bin': data}}, [], f'v{{n}}', target.head())\n"
              f"    target.tag(f'v{{n}}', commit, f'v{{n}}')\n")
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert killed.returncode == -9 and "fault point release:compact:packed" in killed.stderr
    pack_dir = path / ".git" / "objects" / "pack"
    assert len(list(pack_dir.glob("*.pack"))) == 2  # the first version's pack and the new one
    assert subprocess.run(["git", "-C", str(path), "fsck", "--strict"], capture_output=True).returncode == 0
    target = publish.LocalGitTarget(path)
    assert target.read("a.bin", "v1") == first and target.read("a.bin", "v2") == second
    target.tag("v3", target.commit({"a.bin": third}, [], "v3", target.head()), "v3")  # outweighs both packs
    assert len(list(pack_dir.glob("*.pack"))) == 1
    assert [target.read("a.bin", v) for v in ("v1", "v2", "v3")] == [first, second, third]


@pytest.mark.skipif(shutil.which("git") is None, reason="packing needs the git binary")
def test_the_first_version_is_packed_without_deltas_and_each_later_file_as_a_delta(tmp_path):
    """The first version's six tables have files of one name and size, two of them one byte apart,
    which git's delta search would store one as a delta of the other: it is packed without that
    search. The next version changes a byte of each, and the papers get a second shard, which
    renames the first (`-of-00001` to `-of-00002`): no file is stored whole twice, the pack holds
    the first version, the new shard and deltas of a few bytes. (By git's own names, the last 16
    characters of a path, the twelve files are alike, and a window of four holds no file's other
    version.)"""
    target = publish.LocalGitTarget(tmp_path / "releases")
    pack_dir = tmp_path / "releases" / ".git" / "objects" / "pack"

    def deltas() -> int:
        """Objects stored as deltas in the packs (`verify-pack -v` adds depth and base to their lines)."""
        lines = [line.split() for idx in pack_dir.glob("*.idx")
                 for line in subprocess.run(["git", "verify-pack", "-v", str(idx)], capture_output=True,
                                            text=True, check=True).stdout.splitlines()]
        return sum(1 for f in lines if len(f) == 7 and f[1] == "blob")

    def one_byte_changed(data: bytes) -> bytes:
        return data[:-1] + bytes([data[-1] ^ 1])

    size, tables = 40_000, ("papers", "sightings", "aliases", "changes", "authors", "months")
    old = {t: os.urandom(size) for t in tables}
    old["sightings"] = bytes([old["papers"][0] ^ 1]) + old["papers"][1:]
    v1 = target.commit({f"data/{t}/train-00000-of-00001.parquet": data for t, data in old.items()}, [], "v1", None)
    target.tag("v1", v1, "v1")
    assert len(list(pack_dir.glob("*.pack"))) == 1 and deltas() == 0
    new = {t: one_byte_changed(data) for t, data in old.items()}
    files = {f"data/{t}/train-00000-of-00001.parquet": new[t] for t in tables if t != "papers"}
    files |= {"data/papers/train-00000-of-00002.parquet": new["papers"],
              "data/papers/train-00001-of-00002.parquet": os.urandom(size)}
    v2 = target.commit(files, ["data/papers/train-00000-of-00001.parquet"], "v2", v1)
    target.tag("v2", v2, "v2")  # 280 kB loose against a 240 kB pack: packed again, with deltas
    packs = list(pack_dir.glob("*.pack"))
    assert len(packs) == 1 and deltas() >= len(tables)
    assert packs[0].stat().st_size < (len(tables) + 1) * size + 10_000  # whole: v1's files and the new shard
    assert target.read("data/papers/train-00000-of-00002.parquet", v2) == new["papers"]
    assert target.read("data/sightings/train-00000-of-00001.parquet", v1) == old["sightings"]
