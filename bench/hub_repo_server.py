"""A local server speaking the parts of the Hub's HTTP API that `huggingface_hub` and `datasets` use
for dataset repositories (test helper): repo creation, YAML validation, preupload, NDJSON commits
(with the parent-commit check), tags, refs, revision info, tree and paths-info listings, and file
resolve with Range requests. Files are stored in memory, every commit keeps its full tree.

`HubRepoServer(token=...)` refuses writes without that bearer token. `requests` records every
request (method, path, headers with lower-case names); `uploaded` lists, per commit, the paths whose bytes were sent.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from bench.hub_server import LocalServer, QuietHandler


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit -> full tree
    parents: dict[str, str | None] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def add_commit(self, tree: dict[str, bytes], parent: str | None, message: str) -> str:
        sha = hashlib.sha1(json.dumps([parent, message, sorted((p, git_oid(d)) for p, d in tree.items()),
                                       len(self.commits)]).encode()).hexdigest()
        self.commits[sha], self.parents[sha] = tree, parent
        self.branches["main"] = sha
        return sha

    def resolve(self, revision: str) -> str | None:
        revision = unquote(revision)
        for prefix, refs in (("refs/heads/", self.branches), ("refs/tags/", self.tags)):
            if revision.startswith(prefix):
                return refs.get(revision.removeprefix(prefix))
        return self.branches.get(revision) or self.tags.get(revision) or (revision if revision in self.commits else None)


class HubRepoServer(LocalServer):
    def __init__(self, token: str, check_reads: bool = False):
        self.token = token
        self.check_reads = check_reads  # as for a private repository: reads need the token too
        self.repos: dict[str, Repo] = {}
        self.requests: list[dict] = []
        self.uploaded: list[list[str]] = []
        self.lock = threading.RLock()
        super().__init__(_handler(self))


def _entries(tree: dict[str, bytes], paths) -> list[dict]:
    out = []
    for path in paths:
        if path in tree:
            out.append({"type": "file", "oid": git_oid(tree[path]), "size": len(tree[path]), "path": path})
        elif any(p.startswith(path + "/") for p in tree):
            out.append({"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path})
    return out


def _handler(hub: HubRepoServer):
    class Handler(QuietHandler):
        def _error(self, status: int, code: str, message: str):
            self._send(status, {"error": message}, headers={"X-Error-Code": code, "X-Error-Message": message})

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {hub.token}":
                return True
            self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
            return False

        def _route(self):
            url = urlsplit(self.path)
            with hub.lock:
                hub.requests.append({"method": self.command, "path": url.path,
                                     "headers": {k.lower(): v for k, v in self.headers.items()}})
            query = {k: v for k, v in parse_qs(url.query).items()}
            parts = url.path.strip("/").split("/")
            if url.path == "/api/validate-yaml":
                self._body()
                return self._send(200, {"errors": [], "warnings": []})
            if url.path == "/api/repos/create":
                return self._create(json.loads(self._body()))
            if hub.check_reads and not self._authorized():
                return
            if parts[:2] == ["api", "datasets"] and len(parts) >= 4:
                return self._api(f"{parts[2]}/{parts[3]}", parts[4:], query)
            if parts[0] == "datasets" and len(parts) >= 6 and parts[3] == "resolve":
                return self._resolve(f"{parts[1]}/{parts[2]}", parts[4], "/".join(unquote(p) for p in parts[5:]))
            self._error(404, "NotFound", f"no route {url.path}")

        do_GET = do_POST = do_HEAD = lambda self: self._route()

        def _create(self, body: dict):
            if not self._authorized():
                return
            repo_id = f"{body.get('organization') or 'user'}/{body['name']}"
            with hub.lock:
                if repo_id in hub.repos:
                    return self._send(409, {"error": "You already created this dataset repo", "url": repo_id})
                repo = hub.repos[repo_id] = Repo()
                repo.add_commit({".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"}, None,
                                "initial commit")
            self._send(200, {"url": f"{hub.url}/datasets/{repo_id}", "name": repo_id})

        def _api(self, repo_id: str, rest: list[str], query: dict):
            with hub.lock:
                repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            action = rest[0] if rest else "revision"
            revision = rest[1] if len(rest) > 1 else "main"
            if action == "refs":
                with hub.lock:
                    return self._send(200, {
                        "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": c} for n, c in repo.branches.items()],
                        "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": c} for n, c in repo.tags.items()],
                        "converts": []})
            with hub.lock:
                commit = repo.resolve(revision)
            if commit is None:
                self._body()
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {unquote(revision)}")
            tree = repo.commits[commit]
            if action == "revision":
                return self._send(200, {"id": repo_id, "_id": repo_id, "sha": commit, "private": False,
                                        "lastModified": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                                        "siblings": [{"rfilename": p} for p in sorted(tree)],
                                        "tags": [], "downloads": 0, "likes": 0})
            if action == "tree":
                base = "/".join(unquote(p) for p in rest[2:])
                recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                names = set()
                for path in tree:
                    if base and not path.startswith(base + "/"):
                        continue
                    inner = path[len(base) + 1:] if base else path
                    parts = inner.split("/")
                    if recursive:
                        names.update("/".join(filter(None, [base, *parts[:i]])) for i in range(1, len(parts) + 1))
                    else:
                        names.add("/".join(filter(None, [base, parts[0]])))
                if base and not names:
                    return self._error(404, "EntryNotFound", f"{base} does not exist on {unquote(revision)}")
                return self._send(200, _entries(tree, sorted(names)))
            if action == "paths-info":
                body = self._body()
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    paths = json.loads(body).get("paths", [])
                else:
                    paths = parse_qs(body.decode()).get("paths", [])
                return self._send(200, _entries(tree, paths))
            if action == "preupload":
                files = json.loads(self._body())["files"]
                return self._send(200, {"files": [
                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                     "oid": git_oid(tree[f["path"]]) if f["path"] in tree else None} for f in files]})
            if action == "commit":
                return self._commit(repo_id, repo, unquote(revision))
            if action == "tag":
                if not self._authorized():
                    return
                body = json.loads(self._body())
                with hub.lock:
                    if body["tag"] in repo.tags:
                        return self._error(409, "TagExists", f"Tag {body['tag']} already exists")
                    repo.tags[body["tag"]] = commit
                return self._send(200, {})
            self._error(404, "NotFound", f"no action {action}")

        def _commit(self, repo_id: str, repo: Repo, branch: str):
            if not self._authorized():
                return
            lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
            header = next(line["value"] for line in lines if line["key"] == "header")
            with hub.lock:
                head = repo.branches.get(branch)
                if header.get("parentCommit") and header["parentCommit"] != head:
                    return self._error(412, "PreconditionFailed",
                                       "A commit has happened since. Please refresh and try again.")
                tree = dict(repo.commits[head]) if head else {}
                sent = []
                for line in lines:
                    value = line["value"]
                    if line["key"] == "file":
                        tree[value["path"]] = base64.b64decode(value["content"])
                        sent.append(value["path"])
                    elif line["key"] == "deletedFile":
                        if value["path"] not in tree:
                            return self._error(404, "EntryNotFound", "A file with this name doesn't exist")
                        del tree[value["path"]]
                    elif line["key"] == "deletedFolder":
                        tree = {p: d for p, d in tree.items() if not p.startswith(value["path"].rstrip("/") + "/")}
                    elif line["key"] != "header":
                        return self._error(400, "BadRequest", f"unsupported operation {line['key']}")
                sha = repo.add_commit(tree, head, header["summary"])
                hub.uploaded.append(sent)
            self._send(200, {"success": True, "commitOid": sha, "commitUrl": f"{hub.url}/datasets/{repo_id}/commit/{sha}",
                             "pullRequestUrl": None})

        def _resolve(self, repo_id: str, revision: str, path: str):
            with hub.lock:
                repo = hub.repos.get(repo_id)
                commit = repo.resolve(revision) if repo else None
            if repo is None:
                return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            if commit is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {unquote(revision)}")
            data = repo.commits[commit].get(path)
            headers = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
            if data is None:
                return self._error(404, "EntryNotFound", f"{path} does not exist on {unquote(revision)}")
            headers["ETag"] = f'"{git_oid(data)}"'
            span = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
            if span and data:
                start = int(span[1]) if span[1] else max(0, len(data) - int(span[2]))
                end = min(int(span[2]), len(data) - 1) if span[1] and span[2] else len(data) - 1
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                return self._send(206, data[start:end + 1], "application/octet-stream", headers)
            self._send(200, data, "application/octet-stream", headers)

    return Handler
