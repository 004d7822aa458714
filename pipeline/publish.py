"""Publish a prepared release to a target: a local git repository (default) or a Hub dataset repo.

Both targets are driven by the same steps: read the head of `main` and its manifest, finish a
version an interrupted run committed but did not tag, prepare the next version, upload only the
files whose bytes changed and delete the files that are gone in one commit whose parent is the head
read at the start (so a concurrent publisher makes this one fail instead of being overwritten), then
tag it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import polars as pl

from pipeline import faults, release, workers

MANIFEST = "manifest.json"
CHANGELOG = "CHANGELOG.md"
BRANCH = "main"


class PublishConflict(RuntimeError):
    """The branch moved between reading it and committing: someone else published first."""


class PublishError(RuntimeError):
    pass


class Target(Protocol):
    location: str

    def head(self) -> str | None: ...  # commit of `main`, None before the first commit

    def tags(self) -> dict[str, str]: ...  # tag -> commit

    def read(self, path: str, revision: str) -> bytes | None: ...

    def commit(self, uploads: dict[str, bytes], deletes: list[str], message: str, parent: str | None) -> str: ...

    def tag(self, version: str, commit: str, message: str) -> None: ...

    def repair(self) -> None: ...  # whatever a crash left half done outside the commits themselves


@dataclass(frozen=True)
class Published:
    version: str
    commit: str
    location: str
    uploaded: list[str]
    deleted: list[str]


@dataclass
class Latest:
    """What `main` holds: its commit, manifest, tables and changelog (all empty before a first release)."""
    head: str | None
    manifest: dict = field(default_factory=dict)
    tables: release.Tables | None = None
    changelog: str = ""


def latest(target: Target) -> Latest:
    head = target.head()
    raw = target.read(MANIFEST, head) if head else None
    if raw is None:
        return Latest(head)
    manifest = json.loads(raw)

    def read(path: str) -> bytes:
        data = target.read(path, head)
        if data is None:
            raise PublishError(f"{target.location}@{head[:12]}: {path} is in the manifest but not in the repository")
        return data

    return Latest(head, manifest, release.Tables(manifest, read), (target.read(CHANGELOG, head) or b"").decode())


def finish_interrupted(target: Target, current: Latest) -> str | None:
    """Tag the head if it holds a version whose tag is missing (a run stopped between commit and
    tag), after the target's own repairs."""
    target.repair()
    version = current.manifest.get("version")
    if version and version not in target.tags():
        target.tag(version, current.head, f"Release {version}")
        return version
    return None


def plan(prepared: release.Prepared, previous_manifest: dict) -> tuple[dict[str, bytes], list[str]]:
    """The files to upload (new or changed bytes) and the paths to delete (gone from this version)."""
    old = previous_manifest.get("files", {})
    old_paths = set(old) | ({MANIFEST} if previous_manifest else set())
    new = json.loads(prepared.files[MANIFEST])["files"]  # the digests, worked out once (0.4 s at 1M)
    uploads = {path: data for path, data in prepared.files.items()
               if path not in old or old[path]["sha256"] != (new[path]["sha256"] if path in new
                                                             else hashlib.sha256(data).hexdigest())}
    return uploads, sorted(old_paths - set(prepared.files))


def prepare(target: Target, current: Latest, tables: dict[str, pl.DataFrame], captures: pl.DataFrame,
            now: dt.datetime, allow_removals: bool = False, made_from: dict | None = None) -> release.Prepared | None:
    """The next version for this target, or None when the data equal its latest version's."""
    return release.prepare(tables, captures, current.tables, list(target.tags()), current.changelog, now,
                           getattr(target, "repo_id", None), allow_removals, made_from)


def publish(target: Target, prepared: release.Prepared, previous: Latest) -> Published:
    uploads, deletes = plan(prepared, previous.manifest)
    commit = target.commit(uploads, deletes, prepared.message, previous.head)
    faults.point("release:committed")  # the version is on `main`; the next run tags it
    target.tag(prepared.version, commit, prepared.message)
    return Published(prepared.version, commit, target.location, sorted(uploads), deletes)


AUTHOR = b"papers pipeline <papers-pipeline@localhost>"


class LocalGitTarget:
    """A git repository on disk, written through dulwich's object store (no git binary needed; with
    one, the repository is packed with deltas as it grows: `_compact`).

    Objects are written first and `main` is moved last by compare-and-swap, so a crash leaves the
    branch either at the old commit or at the new one; the work tree is refreshed afterwards.
    """

    def __init__(self, path: Path):
        self.path = path
        self.location = str(path)

    def _repo(self, create: bool = False):
        """The repository; made only for a commit (reading a repository that is not there finds
        nothing, and writes nothing)."""
        from dulwich import porcelain
        from dulwich.repo import Repo

        if create and not (self.path / ".git").exists():
            self.path.mkdir(parents=True, exist_ok=True)
            with porcelain.init(str(self.path)) as repo:
                repo.refs.set_symbolic_ref(b"HEAD", b"refs/heads/" + BRANCH.encode())
        repo = Repo(str(self.path))
        # Parquet is compressed already: zlib spent 2 s per 100 MB of it to save 1 %; objects are
        # stored as they are (git's repack, when git is installed, stores them as deltas: `_compact`)
        repo.object_store.loose_compression_level = 0
        return repo

    def _exists(self) -> bool:
        return (self.path / ".git").is_dir()

    def head(self) -> str | None:
        if not self._exists():
            return None
        with self._repo() as repo:
            ref = b"refs/heads/" + BRANCH.encode()
            return repo.refs[ref].decode() if ref in repo.refs else None

    def tags(self) -> dict[str, str]:
        if not self._exists():
            return {}
        with self._repo() as repo:
            out = {}
            for name in repo.refs.keys(base=b"refs/tags/"):
                obj = repo[repo.refs[b"refs/tags/" + name]]
                while obj.type_name == b"tag":
                    obj = repo[obj.object[1]]
                out[name.decode()] = obj.id.decode()
            return out

    @staticmethod
    def _commit_of(repo, revision: str):
        refs = [b"refs/heads/" + revision.encode(), b"refs/tags/" + revision.encode()]
        ref = next((r for r in refs if r in repo.refs), None)
        obj = repo[repo.refs[ref]] if ref else repo[revision.encode()]
        while obj.type_name == b"tag":
            obj = repo[obj.object[1]]
        return obj

    def read(self, path: str, revision: str) -> bytes | None:
        """The file at `revision`: from the work tree when that revision is checked out and the
        file there has the commit's bytes (its git id), since dulwich inflates a loose object
        twice (a release at 1M reads 330 MB: 0.9 s through dulwich, 0.3 s this way)."""
        if not self._exists():
            return None
        with self._repo() as repo:
            try:
                commit = self._commit_of(repo, revision)
                _, sha = repo[commit.tree].lookup_path(repo.object_store.__getitem__, path.encode())
            except KeyError:
                return None
            if (self._checked_out() == commit.id.decode()
                    and (data := self._copy(path, sha, self._index(repo))) is not None):
                return data
            return repo[sha].data

    def _copy(self, name: str, sha: bytes, index: dict) -> bytes | None:
        """The work tree's file `name`, if it holds the blob `sha`: so without hashing it when its
        `stat` is the one the checkout that wrote it as that blob recorded in `index` (path ->
        entry, `_index`), as git tells a file unchanged (a write changes its change time, which
        cannot be set back), else by its git id (at a million listings, 0.3-0.4 s per version
        read, and as much per file a checkout keeps)."""
        from dulwich.objects import Blob

        path = self.path / name
        if not path.is_file():
            return None
        data = path.read_bytes()
        return data if self._as_written(name, sha, index) or Blob.from_string(data).id == sha else None

    def _as_written(self, name: str, sha: bytes, index: dict) -> bool:
        """Whether the work tree's file `name` is, by its `stat`, the blob `sha` as the checkout
        recorded in `index` that it wrote it (no read, no hash)."""
        entry = index.get(name.encode())
        try:
            return entry is not None and entry.sha == sha and _recorded(entry, (self.path / name).lstat())
        except OSError:
            return False

    def _index(self, repo) -> dict:
        """The entries of the index the last checkout wrote (path -> entry) whose files were
        written before it: one written in the same tick of the clock as the index could be
        written again unseen within that tick (git's "racily clean" entries), so is hashed."""
        from dulwich.index import Index

        path = Path(repo.index_path())
        if not path.exists():
            return {}
        written = path.stat().st_mtime_ns
        return {name: entry for name, entry in Index(str(path)).items()
                if _nanoseconds(entry.ctime) < written and _nanoseconds(entry.mtime) < written}

    def _checked_out(self) -> str | None:
        """The commit the work tree holds, as the last checkout left it."""
        marker = self.path / ".git" / "papers-checkout"
        return marker.read_text() if marker.exists() else None

    def commit(self, uploads: dict[str, bytes], deletes: list[str], message: str, parent: str | None) -> str:
        from dulwich.index import commit_tree
        from dulwich.objects import Blob, Commit
        from dulwich.object_store import iter_tree_contents

        ref = b"refs/heads/" + BRANCH.encode()
        with self._repo(create=True) as repo:
            faults.point("release:objects:before")
            entries = {}
            if parent is not None:
                entries = {e.path: (e.sha, e.mode)
                           for e in iter_tree_contents(repo.object_store, self._commit_of(repo, parent).tree)}
            for path in deletes:
                entries.pop(path.encode(), None)
            # Each object is hashed (sha1), framed by zlib and written outside the GIL, so on every
            # core, the largest first: the 330 MB of a release at a million listings, 1.6-2.3 s one
            # at a time, 1.1-1.3 s on two cores.
            blobs = {path: Blob.from_string(uploads[path]) for path in sorted(uploads, key=lambda p: -len(uploads[p]))}
            with ThreadPoolExecutor(workers.cores()) as pool:
                list(pool.map(repo.object_store.add_object, blobs.values()))
            for path, blob in blobs.items():
                entries[path.encode()] = (blob.id, stat.S_IFREG | 0o644)
            c = Commit()
            c.tree = commit_tree(repo.object_store, [(p, sha, mode) for p, (sha, mode) in sorted(entries.items())])
            c.parents = [parent.encode()] if parent else []
            c.author = c.committer = AUTHOR
            c.author_time = c.commit_time = int(time.time())
            c.author_timezone = c.commit_timezone = 0
            c.message = message.encode()
            repo.object_store.add_object(c)
            faults.point("release:objects:after")
            moved = (repo.refs.set_if_equals(ref, parent.encode(), c.id) if parent
                     else repo.refs.add_if_new(ref, c.id))
            if not moved:
                raise PublishConflict(f"{self.location}: {BRANCH} moved since {str(parent)[:12]}; "
                                      "another run published first. Run again to publish on top of it.")
            faults.point("release:ref:after")
        self._check_out(c.id.decode(), uploads)
        return c.id.decode()

    def repair(self) -> None:
        """Check `main` out into the work tree unless it is checked out already (the commit moves
        the branch first; a crash before the checkout leaves the work tree behind)."""
        self._check_out(self.head())

    def _check_out(self, head: str | None, committed: dict[str, bytes] | None = None) -> None:
        """Make the work tree and the index those of `head`: a file is written when its bytes
        differ from the commit's (from `committed`, the bytes a commit just stored, when it has
        them), and files the commit does not have are removed. (dulwich's `reset_index` read every
        file back from the object store, inflating each object twice: 2 s of a release at 1M.)"""
        from dulwich.index import Index, index_entry_from_stat
        from dulwich.object_store import iter_tree_contents

        if head is None or self._checked_out() == head:
            return
        faults.point("release:checkout:before")
        committed = committed or {}
        tracked = set()
        with self._repo() as repo:
            recorded = self._index(repo)
            index = Index(repo.index_path(), read=False)
            for entry in iter_tree_contents(repo.object_store, self._commit_of(repo, head).tree):
                name = entry.path.decode()
                tracked.add(name)
                path = self.path / name
                for link in [self.path / folder for folder in reversed(Path(name).parents[:-1])] + [path]:
                    if link.is_symlink():  # (a link, to a folder or a file, is replaced, never written through)
                        link.unlink()
                # (a file the checkout wrote as it is kept without being read)
                kept = name not in committed and (self._as_written(name, entry.sha, recorded)
                                                  or self._copy(name, entry.sha, recorded) is not None)
                if not kept:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(committed[name] if name in committed else repo[entry.sha].data)
                index[entry.path] = index_entry_from_stat(path.stat(), entry.sha)
            index.write()
            # An entry as new as the index is "racily clean" (`_index`): the index is written again
            # once the clock has moved past its files' times (a tick, a few ms), so that the files it
            # recorded can be read unhashed; with a clock that does not move, they are hashed.
            newest = max((_nanoseconds(e.ctime) for _, e in index.items()), default=0)
            for _ in range(100):
                if os.stat(repo.index_path()).st_mtime_ns > newest:
                    break
                time.sleep(0.005)
                index.write()
        for path in self.path.rglob("*"):
            rel = path.relative_to(self.path)
            if path.is_file() and ".git" not in rel.parts and rel.as_posix() not in tracked:
                path.unlink()
        (self.path / ".git" / "papers-checkout").write_text(head)
        faults.point("release:checkout:after")

    def tag(self, version: str, commit: str, message: str) -> None:
        from dulwich import porcelain

        faults.point("release:tag:before")
        with self._repo() as repo:
            porcelain.tag_create(repo, version, author=AUTHOR, message=message.encode(), annotated=True,
                                 objectish=commit)
            first = not repo[commit.encode()].parents
        faults.point("release:tag:after")
        self._compact(deltas=not first)

    def _compact(self, deltas: bool) -> None:
        """Pack the repository with deltas when git is installed: a version's files share most of
        their bytes with the last one's (content-defined pages), which dulwich, writing each object
        whole, does not use. A repack reads every version, so it runs only once the files written
        whole since the last one add up to the packs' size: its cost, spread over the versions
        between, stays in proportion to a version, and the repository at most twice its packed size
        (at a million listings, repacking after every version took 48 s of a 63 s release). The
        first version has no earlier one to be a delta of (its files are different tables and
        months), so it is packed without looking for deltas: at a million listings that search took
        9 s of the first release's 21 s and found none.

        Later ones look for each file's base among the four files before it in git's order, which
        is by name, then size (`--window=4`; git's default is 10). git knows a file by the last 16
        characters of its path, which every shard of every table shares (`…0-of-00002.parquet`),
        so its window mostly held shards of other tables and places; here each file is named by a
        hash of its path without the shard count (which changes as a table grows), so that the
        versions of one file are next to each other. On a repository of three versions at a
        million listings: 10.5 s instead of 38-44 s (`git repack -a -d`), the same 658 MB; 30 daily
        versions of 100,000 papers packed from scratch: 243 MB in 43-50 s against 245 MB in 75 s
        (two files before: 279 MB). git writes the new pack before the old ones and the loose
        objects are removed, so a kill midway leaves the repository whole (some objects twice,
        until the next repack)."""
        git = shutil.which("git")
        if git is None:
            return
        objects = self.path / ".git" / "objects"
        loose = sum(f.stat().st_size for d in objects.glob("[0-9a-f][0-9a-f]") for f in d.iterdir())
        packs = list((objects / "pack").glob("pack-*.pack"))
        if loose <= sum(f.stat().st_size for f in packs):
            return
        run = [git, "-C", str(self.path)]
        try:
            listed = subprocess.run([*run, "rev-list", "--objects", "--all"], capture_output=True, text=True,
                                    check=True).stdout.splitlines()
            names = "".join(f"{sha} {_pack_name(path)}\n" if path else f"{sha}\n"
                            for sha, _, path in (line.partition(" ") for line in listed))
            # (without zlib: the Parquet is compressed already; zlib took 7 s of a 20 s repack at 1M)
            new = subprocess.run([*run, "-c", "pack.compression=0", "pack-objects", "-q",
                                  f"--window={4 if deltas else 0}", str(objects / "pack" / "pack")],
                                 input=names, capture_output=True, text=True, check=True).stdout.strip()
        except subprocess.CalledProcessError:
            return  # the repository as it was, every version in it: packing is only its size
        faults.point("release:compact:packed")
        for pack in packs:
            if pack.stem != f"pack-{new}":
                for part in pack.parent.glob(pack.stem + ".*"):
                    part.unlink()
        subprocess.run([*run, "prune-packed", "-q"], capture_output=True, check=False)


def _nanoseconds(time_: tuple[int, int] | float) -> int:
    return time_[0] * 1_000_000_000 + time_[1] if isinstance(time_, tuple) else int(time_ * 1e9)


def _recorded(entry, info: os.stat_result) -> bool:
    """Whether a file's `stat` is the one its index entry recorded (of the device, inode and size,
    the index keeps the low 32 bits)."""
    from dulwich.index import index_entry_from_stat

    now, low = index_entry_from_stat(info, entry.sha), 0xFFFFFFFF
    return (_nanoseconds(now.ctime) == _nanoseconds(entry.ctime) and _nanoseconds(now.mtime) == _nanoseconds(entry.mtime)
            and now.mode == entry.mode and all(getattr(now, f) & low == getattr(entry, f) & low
                                               for f in ("dev", "ino", "size")))


def _pack_name(path: str) -> str:
    """The name git's delta search knows a file by: the same for each version of the file, even as
    its shard count changes (`train-00001-of-00002` and `train-00001-of-00003`), and different in
    its last 16 characters, the ones git looks at, from every other file's."""
    return hashlib.sha256(re.sub(r"-of-\d+", "", path).encode()).hexdigest()[:16]


class HubTarget:
    """A dataset repository on the Hugging Face Hub (or any server speaking its API: HF_ENDPOINT).

    The token is read from `HF_TOKEN` by the caller and handed to `HfApi` only, which sends it to
    the configured endpoint and nowhere else; it is never logged or put in a message.
    """

    def __init__(self, repo_id: str, token: str | None, endpoint: str | None = None):
        from huggingface_hub import HfApi

        self.repo_id = repo_id
        self.api = HfApi(endpoint=endpoint, token=token or False)
        self.location = f"{self.api.endpoint}/datasets/{repo_id}"
        self._has_token = bool(token)

    @contextmanager
    def _asking(self, what: str):
        """The Hub's refusals and an unreachable server as one PublishError naming the cause (with
        the server's own message, e.g. "Invalid credentials"); never the token."""
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

        try:
            yield
        except (RepositoryNotFoundError, PublishConflict, PublishError):
            raise
        except HfHubHTTPError as error:
            status = error.response.status_code if error.response is not None else None
            if status in (409, 412):
                raise PublishConflict(f"{self.location}: {BRANCH} moved meanwhile; another run published first. "
                                      "Run again to publish on top of it.") from None
            hint = " (check HF_TOKEN: it must be a valid token with access to the repository)" if status in (401, 403) else ""
            raise PublishError(f"{self.location}: {what} refused ({status}): {_server_message(error)}{hint}") from None
        except Exception as error:  # the HTTP client's transport errors (httpx, or httpx2 for huggingface_hub 2)
            if not (isinstance(error, (OfflineModeIsEnabled, OSError))
                    or type(error).__module__.split(".")[0] in ("httpx", "httpx2")):
                raise
            raise PublishError(f"{self.location}: cannot reach the Hub to {what} ({_first_line(error)}): check the "
                               "network, or HF_ENDPOINT") from None

    def _refs(self):
        from huggingface_hub.errors import RepositoryNotFoundError

        with self._asking("read the repository's branches and tags"):
            try:
                return self.api.list_repo_refs(self.repo_id, repo_type="dataset")
            except RepositoryNotFoundError:
                return None

    def head(self) -> str | None:
        refs = self._refs()
        return None if refs is None else next((b.target_commit for b in refs.branches if b.name == BRANCH), None)

    def tags(self) -> dict[str, str]:
        refs = self._refs()
        return {} if refs is None else {t.name: t.target_commit for t in refs.tags}

    def read(self, path: str, revision: str) -> bytes | None:
        from huggingface_hub.errors import EntryNotFoundError

        # A private cache, gone after the read: reading the release writes nothing of the user's.
        with tempfile.TemporaryDirectory(prefix="papers-hub-") as cache, self._asking(f"read {path}"):
            try:
                local = self.api.hf_hub_download(self.repo_id, path, repo_type="dataset", revision=revision,
                                                 cache_dir=cache)
            except EntryNotFoundError:
                return None
            return Path(local).read_bytes()

    def commit(self, uploads: dict[str, bytes], deletes: list[str], message: str, parent: str | None) -> str:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        if not self._has_token:
            raise PublishError("HF_TOKEN is not set: publishing to the Hub needs a token with write access")
        operations = ([CommitOperationAdd(path_in_repo=p, path_or_fileobj=d) for p, d in sorted(uploads.items())]
                      + [CommitOperationDelete(path_in_repo=p) for p in deletes])
        with self._asking("commit"):
            if parent is None:
                self.api.create_repo(self.repo_id, repo_type="dataset", exist_ok=True)
                parent = self.head()  # a new repo starts with the Hub's initial commit
                if parent is not None and self.read(MANIFEST, parent) is not None:
                    raise PublishConflict(f"{self.location}: another run published the first version meanwhile; "
                                          "run again to publish on top of it.")
            info = self.api.create_commit(self.repo_id, operations, commit_message=message, repo_type="dataset",
                                          revision=BRANCH, parent_commit=parent)
        return info.oid

    def repair(self) -> None:
        pass  # a Hub commit is one request: nothing of it can be half done

    def tag(self, version: str, commit: str, message: str) -> None:
        with self._asking(f"tag {version}"):
            self.api.create_tag(self.repo_id, tag=version, tag_message=message, revision=commit, repo_type="dataset")


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _server_message(error) -> str:
    """What the Hub said (its `error` field, e.g. "Invalid credentials"), else the first line."""
    return (getattr(error, "server_message", None) or _first_line(error)).strip().splitlines()[0]


def check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise PublishError(f"PAPERS_HUB_REPO={repo_id!r} is not a Hub repository id: give owner/name "
                           "(letters, digits, '-', '_', '.'), e.g. my-org/hf-papers") from None


def target(releases_dir: Path, repo_id: str | None = None) -> Target:
    """The Hub repo `repo_id` (token from HF_TOKEN, server from HF_ENDPOINT), else the local repository."""
    if repo_id:
        check_repo_id(repo_id)
        return HubTarget(repo_id, os.environ.get("HF_TOKEN"), os.environ.get("HF_ENDPOINT"))
    return LocalGitTarget(releases_dir)
