"""A Hub-compatible HTTP server on 127.0.0.1 for tests: the endpoints huggingface_hub's client calls to create a
repository, upload a commit, validate card metadata, and download files (model info, tree, resolve).

Repositories live in memory. Every upload is checked against one bearer token. `fail_next[route] = n` makes the
next n requests to `route` ("commit", "create", "preupload", "whoami") answer 503, to exercise retries.
"""

import base64
import hashlib
import json
import re
import threading
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml


class FakeHub:
    def __init__(self, token: str, user: str = "tester"):
        self.token, self.user = token, user
        self.repos: dict[str, dict] = {}  # repo_id -> {"files": {path: bytes}, "sha": str, "private": bool}
        self.fail_next: dict[str, int] = defaultdict(int)
        self.calls: Counter = Counter()
        self.headers_seen: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                hub._dispatch(self, "GET")

            def do_HEAD(self):
                hub._dispatch(self, "HEAD")

            def do_POST(self):
                hub._dispatch(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ plumbing

    def _send(self, handler, status: int, body=b"", headers=None, method="GET"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.send_response(status)
        content_type = "application/octet-stream" if isinstance(body, bytes) else "application/json"
        for key, value in {"Content-Type": content_type, "Content-Length": str(len(data)), **(headers or {})}.items():
            handler.send_header(key, value)
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(data)

    def _authorized(self, handler) -> bool:
        auth = handler.headers.get("Authorization", "")
        self.headers_seen.append(auth)
        return auth == f"Bearer {self.token}"

    def _dispatch(self, handler, method):
        path = handler.path.split("?")[0]
        body = b""
        if method == "POST":
            body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        routes = [
            ("GET", r"/api/whoami-v2", "whoami", self._whoami),
            ("POST", r"/api/repos/create", "create", self._create),
            ("POST", r"/api/validate-yaml", "validate", self._validate),
            ("POST", r"/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/]+)", "preupload", self._preupload),
            ("POST", r"/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/]+)", "commit", self._commit),
            ("GET", r"/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree", self._tree),
            ("GET", r"/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?", "info", self._info),
            ("GET|HEAD", r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve", self._resolve),
        ]
        for methods, pattern, name, route in routes:
            match = re.fullmatch(pattern, path)
            if match and method in methods.split("|"):
                self.calls[name] += 1
                if self.fail_next[name] > 0:
                    self.fail_next[name] -= 1
                    return self._send(handler, 503, {"error": "Service temporarily unavailable"}, method=method)
                return route(handler, method, body, **match.groupdict())
        return self._send(handler, 404, {"error": f"no route for {method} {path}"}, method=method)

    def _repo_or_404(self, handler, repo, method):
        if repo not in self.repos:
            self._send(handler, 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}, method)
            return None
        return self.repos[repo]

    # ------------------------------------------------------------------ endpoints

    def _whoami(self, handler, method, body):
        if not self._authorized(handler):
            return self._send(handler, 401, {"error": "Invalid credentials in Authorization header"})
        return self._send(
            handler,
            200,
            {
                "type": "user",
                "name": self.user,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"role": "write"}},
            },
        )

    def _create(self, handler, method, body):
        if not self._authorized(handler):
            return self._send(handler, 401, {"error": "Invalid credentials"})
        payload = json.loads(body)
        repo_id = f"{payload.get('organization') or self.user}/{payload['name']}"
        if repo_id in self.repos:
            return self._send(handler, 409, {"error": "You already created this model repo", "url": repo_id})
        self.repos[repo_id] = {"files": {}, "sha": "0" * 40, "private": bool(payload.get("private"))}
        return self._send(handler, 200, {"url": f"{self.url}/{repo_id}", "name": repo_id})

    def _validate(self, handler, method, body):
        content = json.loads(body)["content"]
        match = re.match(r"^---\n(.*?)\n---", content, re.S)
        try:
            metadata = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as error:
            return self._send(handler, 400, str(error).encode())
        if not isinstance(metadata, dict) or metadata.get("license") is None:
            return self._send(handler, 400, b"metadata must be a mapping with a license")
        return self._send(handler, 200, {"errors": [], "warnings": []})

    def _preupload(self, handler, method, body, repo, rev):
        if not self._authorized(handler):
            return self._send(handler, 401, {"error": "Invalid credentials"})
        files = json.loads(body)["files"]
        return self._send(
            handler,
            200,
            {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]},
        )

    def _commit(self, handler, method, body, repo, rev):
        if not self._authorized(handler):
            return self._send(handler, 401, {"error": "Invalid credentials"})
        record = self._repo_or_404(handler, repo, method)
        if record is None:
            return None
        for line in body.decode().splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                record["files"][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] == "deletedFile":
                record["files"].pop(item["value"]["path"], None)
            elif item["key"] != "header":
                return self._send(handler, 400, {"error": f"unsupported commit item {item['key']}"})
        record["sha"] = hashlib.sha1(repr(sorted(record["files"].items())).encode()).hexdigest()
        return self._send(
            handler,
            200,
            {"commitUrl": f"{self.url}/{repo}/commit/{record['sha']}", "commitOid": record["sha"], "success": True},
        )

    def _info(self, handler, method, body, repo, rev=None):
        record = self._repo_or_404(handler, repo, method)
        if record is None:
            return None
        return self._send(
            handler,
            200,
            {
                "id": repo,
                "modelId": repo,
                "sha": record["sha"],
                "private": record["private"],
                "tags": [],
                "downloads": 0,
                "likes": 0,
                "siblings": [{"rfilename": name} for name in sorted(record["files"])],
            },
        )

    def _tree(self, handler, method, body, repo, rev, path=None):
        record = self._repo_or_404(handler, repo, method)
        if record is None:
            return None
        prefix = f"{path.rstrip('/')}/" if path else ""
        entries = [
            {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
            for name, data in sorted(record["files"].items())
            if name.startswith(prefix)
        ]
        return self._send(handler, 200, entries)

    def _resolve(self, handler, method, body, repo, rev, path):
        record = self._repo_or_404(handler, repo, method)
        if record is None:
            return None
        if path not in record["files"]:
            return self._send(
                handler,
                404,
                {"error": "Entry not found"},
                {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": record["sha"]},
                method,
            )
        data = record["files"][path]
        headers = {"X-Repo-Commit": record["sha"], "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
        return self._send(handler, 200, data, headers, method)
