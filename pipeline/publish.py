"""Publish a prepared release to its target: for now the local git repository under the data dir.

One commit and one annotated tag per version; `main` always holds the latest version.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from dulwich import porcelain
from dulwich.repo import Repo

from pipeline import card, release, schema

AUTHOR = b"papers pipeline <papers-pipeline@localhost>"


@dataclass(frozen=True)
class Published:
    version: str
    commit: str
    location: str


class LocalGitTarget:
    """A git repository on disk (dulwich: no git binary needed)."""

    def __init__(self, path: Path):
        self.path = path

    def _repo(self) -> Repo:
        if not (self.path / ".git").exists():
            self.path.mkdir(parents=True, exist_ok=True)
            with porcelain.init(str(self.path)) as repo:
                repo.refs.set_symbolic_ref(b"HEAD", b"refs/heads/main")
        return Repo(str(self.path))

    def tags(self) -> list[str]:
        with self._repo() as repo:
            return sorted(t.decode() for t in repo.refs.keys(base=b"refs/tags/"))

    def read(self, path: str, version: str) -> bytes | None:
        """A file of a version, from the git objects (not the work tree)."""
        with self._repo() as repo:
            ref = b"refs/tags/" + version.encode()
            if ref not in repo.refs:
                return None
            obj = repo[repo.refs[ref]]
            while obj.type_name == b"tag":
                obj = repo[obj.object[1]]
            tree = repo[obj.tree]
            try:
                _, sha = tree.lookup_path(repo.object_store.__getitem__, path.encode())
            except KeyError:
                return None
            return repo[sha].data

    def previous(self) -> tuple[dict[str, pl.DataFrame] | None, str]:
        """The latest version's published tables, and its changelog."""
        latest = release.latest_version(self.tags())
        if latest is None:
            return None, ""
        tables = {}
        for name in release.PUBLISHED:
            data = self.read(f"{card.CONFIGS[name]}/{release.SHARD}", latest)
            frame = pl.read_parquet(io.BytesIO(data)) if data is not None else schema.empty(schema.TABLES[name])
            tables[name] = schema.conform(frame, schema.TABLES[name])
        return tables, (self.read("CHANGELOG.md", latest) or b"").decode()

    def publish(self, prepared: release.Prepared) -> Published:
        repo_files = {p.relative_to(self.path).as_posix() for p in self.path.rglob("*")
                      if p.is_file() and ".git" not in p.relative_to(self.path).parts}
        with self._repo() as repo:
            for stale in sorted(repo_files - set(prepared.files)):
                porcelain.remove(repo, [str(self.path / stale)])
            for path, data in prepared.files.items():
                target = self.path / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            porcelain.add(repo, [str(self.path / p) for p in sorted(prepared.files)])
            commit = porcelain.commit(repo, message=prepared.message.encode(), author=AUTHOR, committer=AUTHOR)
            porcelain.tag_create(repo, prepared.version, author=AUTHOR, message=prepared.message.encode(),
                                 annotated=True, objectish=commit)
        return Published(prepared.version, commit.decode(), str(self.path))
