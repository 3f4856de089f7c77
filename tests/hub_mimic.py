"""A local HTTP server on 127.0.0.1 that answers as the Hugging Face Hub and as plain web hosts do, for the files
it is given, so `weights fetch` runs its real download code (huggingface_hub, urllib) offline.

Hub: GET /api/models/<repo>[/revision/<rev>] (the commit and each file's size, git blob id and, for a large file,
its LFS sha256), HEAD and GET /<repo>/resolve/<rev>/<file> with the Hub's X-Repo-Commit, ETag and Content-Length
headers. Web: GET /web/<host>/<path> serves the file published at https://<host>/<path>.
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".model")


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Sources:
    """repo -> {file: bytes} (one commit each), and URL -> bytes; `lies` lists (repo, file) whose bytes the server
    changes after announcing them, as a broken mirror would."""

    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    web: dict[str, bytes] = field(default_factory=dict)
    lies: set[tuple[str, str]] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)

    def commit(self, repo: str) -> str:
        return hashlib.sha1(repo.encode()).hexdigest()

    def sibling(self, name: str, data: bytes) -> dict:
        row = {"rfilename": name, "size": len(data), "blobId": blob_id(data)}
        if name.endswith(LFS_SUFFIXES):
            row["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134}
        return row


def handler(sources: Sources) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def reply(self, body: bytes, headers: Mapping[str, str] = {}, status: int = 200) -> None:
            self.send_response(status)
            for key, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)

        def route(self) -> None:
            raw = urlsplit(self.path).path
            path = unquote(raw)
            sources.requests.append(f"{self.command} {path}")
            if path.startswith("/web/"):
                url = "https://" + raw.removeprefix("/web/")  # as published, quoting kept
                return self.reply(sources.web[url]) if url in sources.web else self.reply(b"", status=404)
            if path.startswith("/api/models/"):
                repo = "/".join(path.removeprefix("/api/models/").split("/")[:2])
                files = sources.repos.get(repo)
                if files is None:
                    return self.reply(b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"}, 404)
                body = json.dumps({"id": repo, "sha": sources.commit(repo),
                                   "siblings": [sources.sibling(n, d) for n, d in files.items()]}).encode()
                return self.reply(body, {"Content-Type": "application/json"})
            owner, name, resolve, _revision, *file = path.strip("/").split("/")
            repo, filename = f"{owner}/{name}", "/".join(file)
            data = sources.repos.get(repo, {}).get(filename)
            if resolve != "resolve" or data is None:
                return self.reply(b"", {"X-Error-Code": "EntryNotFound"}, 404)
            etag = sources.sibling(filename, data).get("lfs", {}).get("sha256") or blob_id(data)
            if (repo, filename) in sources.lies:
                data = data[:-1] + bytes([data[-1] ^ 1])
            self.reply(data, {"X-Repo-Commit": sources.commit(repo), "ETag": f'"{etag}"', "Accept-Ranges": "bytes"})

        do_GET = do_HEAD = route

    return Handler


@contextmanager
def serving(sources: Sources) -> Iterator[str]:
    """Serve `sources` on a free port of 127.0.0.1; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(sources))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
