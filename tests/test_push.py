"""Hub push: the dry-run folder is exact; an upload reaches a local Hub server as ONE commit with the right bytes.

The server below speaks the part of the Hub API that huggingface_hub 2.x uses for ``create_repo`` +
``upload_folder``: POST /api/repos/create, POST /api/validate-yaml (README.md metadata), POST
/api/models/{repo}/preupload/{rev} (regular vs LFS per file), POST /{repo}.git/info/lfs/objects/batch (basic
transfer only, no xet), PUT of the object to the href it hands out, POST verify, and POST
/api/models/{repo}/commit/{rev} (ndjson: header, base64 files, lfsFile pointers). The client finds it through
``HF_ENDPOINT`` in a subprocess (read at import time); ``HF_HUB_DISABLE_XET=1`` is huggingface_hub's documented
switch from xet to the LFS protocol, which a server that does not speak xet needs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import threading
import zlib
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from conftest import tiny_model

import hf_resize
from hf_resize.cli import main
from hf_resize.errors import HFResizeError, OutputExistsError
from hf_resize.publish import HUB_BASE_MODEL_RELATIONS, build_model_card, push_folder

TOKEN = "hf_local_test_token"
LFS_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.model", "*.msgpack", "*.h5", "*.onnx", "*.gguf")


class LocalHub(ThreadingHTTPServer):
    """An in-memory Hub: repos, LFS objects and commits, plus a log of every request."""

    daemon_threads = True

    def __init__(self, lfs: bool = True) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lfs = lfs  # False: answer "regular" for every file (what the Hub does for small text files)
        self.repos: dict[str, dict] = {}
        self.objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.unexpected: list[str] = []
        self.auth: set[str] = set()
        self.validated: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> LocalHub:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects
    server: LocalHub

    def log_message(self, *args) -> None:  # quiet
        pass

    # -- plumbing
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, payload=None, headers: dict | None = None) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _not_found(self, what: str = "Repository not found") -> None:
        self._send(404, {"error": what}, {"X-Error-Code": "RepoNotFound", "X-Error-Message": what})

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        hub = self.server
        path = self.path.split("?")[0]
        body = self._body()
        with hub.lock:
            hub.requests.append((method, path))
            if self.headers.get("Authorization"):
                hub.auth.add(self.headers["Authorization"])
        if self.headers.get("Authorization") != f"Bearer {TOKEN}" and not path.startswith("/lfs-"):
            return self._send(401, {"error": "Invalid credentials"})
        routes = [
            ("POST", r"/api/repos/create", self._create),
            ("POST", r"/api/validate-yaml", self._validate_yaml),
            ("POST", r"/api/models/([^/]+/[^/]+)/preupload/([^/]+)", self._preupload),
            ("POST", r"/([^/]+/[^/]+)\.git/info/lfs/objects/batch", self._lfs_batch),
            ("PUT", r"/lfs-upload/([0-9a-f]{64})", self._lfs_put),
            ("POST", r"/lfs-verify/([^/]+/[^/]+)", self._lfs_verify),
            ("POST", r"/api/models/([^/]+/[^/]+)/commit/([^/]+)", self._commit),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                return handler(body, *match.groups())
        with hub.lock:
            hub.unexpected.append(f"{method} {self.path}")
        self._not_found(f"unexpected request {method} {path}")

    # -- endpoints
    def _create(self, body: bytes) -> None:
        payload = json.loads(body)
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else f"me/{payload['name']}"
        url = f"{self.server.url}/{repo_id}"
        with self.server.lock:
            if repo_id in self.server.repos:
                return self._send(409, {"error": "You already created this model repo", "url": url})
            self.server.repos[repo_id] = {"create": payload, "commits": []}
        self._send(200, {"url": url, "name": repo_id, "id": "local"})

    def _validate_yaml(self, body: bytes) -> None:
        content = json.loads(body)["content"]
        self.server.validated.append(content)
        match = re.match(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))", content)
        errors = []
        meta = yaml.safe_load(match.group(2)) if match else None
        if not isinstance(meta, dict):
            errors.append("README.md has no YAML metadata block")
        else:
            relation = meta.get("base_model_relation")
            if relation is not None and relation not in HUB_BASE_MODEL_RELATIONS:
                errors.append(f'"base_model_relation" must be one of {HUB_BASE_MODEL_RELATIONS}')
            for key in ("tags", "datasets", "base_model"):
                value = meta.get(key)
                if value is not None and not (isinstance(value, str) or all(isinstance(v, str) for v in value)):
                    errors.append(f'"{key}" must be a string or a list of strings')
        if errors:
            return self._send(400, {"errors": [{"message": e} for e in errors], "warnings": []})
        self._send(200, {"errors": [], "warnings": []})

    def _preupload(self, body: bytes, repo_id: str, revision: str) -> None:
        if repo_id not in self.server.repos:
            return self._not_found()
        files = []
        for entry in json.loads(body)["files"]:
            sample = base64.b64decode(entry["sample"])
            lfs = self.server.lfs and (
                any(fnmatch(entry["path"], p) for p in LFS_PATTERNS) or entry["size"] > 10_000_000 or b"\x00" in sample
            )
            files.append({"path": entry["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False})
        self._send(200, {"files": files, "commitOid": "0" * 40})

    def _lfs_batch(self, body: bytes, repo_id: str) -> None:
        if repo_id not in self.server.repos:
            return self._not_found()
        payload = json.loads(body)
        assert payload["operation"] == "upload" and "basic" in payload["transfers"], payload
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.server.objects:
                entry["actions"] = {
                    "upload": {"href": f"{self.server.url}/lfs-upload/{obj['oid']}"},
                    "verify": {"href": f"{self.server.url}/lfs-verify/{repo_id}"},
                }
            objects.append(entry)
        self._send(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _lfs_put(self, body: bytes, oid: str) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            return self._send(400, {"error": "sha256 mismatch"})
        self.server.objects[oid] = body
        self._send(200, {})

    def _lfs_verify(self, body: bytes, repo_id: str) -> None:
        payload = json.loads(body)
        stored = self.server.objects.get(payload["oid"])
        if stored is None or len(stored) != payload["size"]:
            return self._send(404, {"error": "object not found"})
        self._send(200, {})

    def _commit(self, body: bytes, repo_id: str, revision: str) -> None:
        repo = self.server.repos.get(repo_id)
        if repo is None:
            return self._not_found()
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header, files, via_lfs = None, {}, []
        for line in lines:
            value = line["value"]
            if line["key"] == "header":
                header = value
            elif line["key"] == "file":
                assert value["encoding"] == "base64"
                files[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] == "lfsFile":
                data = self.server.objects.get(value["oid"])
                if data is None or len(data) != value["size"]:
                    return self._send(422, {"error": f"LFS object of {value['path']} was never uploaded"})
                files[value["path"]] = data
                via_lfs.append(value["path"])
            else:
                return self._send(400, {"error": f"unsupported operation {line['key']}"})
        oid = hashlib.sha1(body).hexdigest()
        repo["commits"].append({"header": header, "files": files, "lfs": via_lfs, "revision": revision, "oid": oid})
        self._send(200, {"commitUrl": f"{self.server.url}/{repo_id}/commit/{oid}", "commitOid": oid,
                         "success": True, "pullRequestUrl": None})


# ------------------------------------------------------------------------------------------------ fixtures


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{f"w{i}": i for i in range(4, 97)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


def write_png(path: Path) -> Path:
    """A valid 1x1 PNG (the card only links it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    model = tiny_model("llama")
    hf_resize.resize(model, hf_resize.MagnitudeConfig(ratio=0.25, groups=("mlp", "heads")))
    folder = tmp_path_factory.mktemp("push") / "tiny"
    hf_resize.save_resized(model, folder, tokenizer=_tokenizer(), summary={**model.hf_resize_info, "source": "smollm2-135m"})
    (folder / "notes.txt").write_text("local scratch, not for the Hub")
    return folder


MODEL_FILES = {"config.json", "generation_config.json", "hf_resize.json", "model.safetensors", "tokenizer.json",
               "tokenizer_config.json"}


# ------------------------------------------------------------------------------------------------ tests


def test_dry_run_writes_exactly_the_upload(model_dir, tmp_path, capsys):
    plot = write_png(tmp_path / "ppl_vs_params.png")
    out = tmp_path / "staged"
    result = push_folder(model_dir, "me/tiny-magnitude", dry_run_dir=out, plot=plot)
    expected = MODEL_FILES | {"README.md", "ppl_vs_params.png"}
    assert {p.name for p in out.iterdir()} == expected == set(result.files)
    assert result.left_out == ("notes.txt",) and result.repo_url is None
    for name in MODEL_FILES:
        assert (out / name).read_bytes() == (model_dir / name).read_bytes(), name
        assert not (out / name).samefile(model_dir / name)  # a real copy, not a link into the model folder
    assert (out / "ppl_vs_params.png").read_bytes() == plot.read_bytes()
    card = build_model_card(model_dir, repo_id="me/tiny-magnitude", plot=plot)
    assert (out / "README.md").read_text() == str(card)
    assert "![" in card.text and "](ppl_vs_params.png)" in card.text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind

    # the same through the CLI; an existing output folder is refused before anything is written
    assert main(["push", str(model_dir), "me/tiny-magnitude", "--dry-run", str(tmp_path / "cli")]) == 0
    assert {p.name for p in (tmp_path / "cli").iterdir()} == MODEL_FILES | {"README.md"}
    assert "nothing uploaded" in capsys.readouterr().out
    assert main(["push", str(model_dir), "me/tiny-magnitude", "--dry-run", str(out)]) == OutputExistsError.exit_code


def test_push_refuses_a_non_model_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "missing", tmp_path / "empty"):
        assert main(["push", str(folder), "me/x", "--dry-run", str(tmp_path / "o")]) == HFResizeError.exit_code
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "config.json" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


PUSH_SCRIPT = "import sys; from hf_resize.cli import main; sys.exit(main(sys.argv[1:]))"


def test_push_uploads_one_commit_to_local_hub(model_dir, tmp_path):
    plot = write_png(tmp_path / "plot.png")
    env = {
        **os.environ,
        "HF_ENDPOINT": "",  # set below, once the server has a port
        "HF_HUB_DISABLE_XET": "1",  # documented switch: LFS protocol instead of xet (this server has no xet)
        "HF_HOME": str(tmp_path / "hf_home"),  # no stored token or cache of the machine
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    env.pop("HF_TOKEN", None)
    env.pop("HF_HUB_OFFLINE", None)
    with LocalHub(lfs=True) as hub:
        env["HF_ENDPOINT"] = hub.url
        run = subprocess.run(
            [sys.executable, "-c", PUSH_SCRIPT, "push", str(model_dir), "alice/tiny-magnitude", "--token", TOKEN,
             "--plot", str(plot), "--private"],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert hub.unexpected == []
        used = {re.sub(r"^/(api/models/[^/]+/[^/]+/|[^/]+/[^/]+\.git/info/lfs/objects/|api/(repos/)?)?", "", p).split("/")[0]
                for _, p in hub.requests}
        assert {"create", "validate-yaml", "preupload", "batch", "lfs-upload", "lfs-verify", "commit"} == used
        repo = hub.repos["alice/tiny-magnitude"]
        assert repo["create"]["visibility"] == "private" and repo["create"]["type"] == "model"
        assert len(repo["commits"]) == 1  # config, weights, tokenizer and card together
        commit = repo["commits"][0]
        files = commit["files"]
        assert set(files) == MODEL_FILES | {"README.md", "plot.png"}
        for name in MODEL_FILES:
            assert files[name] == (model_dir / name).read_bytes(), name
        assert files["plot.png"] == plot.read_bytes()
        assert sorted(commit["lfs"]) == ["model.safetensors", "plot.png"]  # binary files went through LFS
        assert ("PUT", f"/lfs-upload/{hashlib.sha256(files['model.safetensors']).hexdigest()}") in hub.requests
        card = files["README.md"].decode()
        assert card == str(build_model_card(model_dir, repo_id="alice/tiny-magnitude", plot=plot))
        assert hub.validated == [card] * len(hub.validated) and hub.validated  # README checked by the Hub API
        assert hub.auth == {f"Bearer {TOKEN}"}
        assert commit["header"]["summary"] == "Upload magnitude-resized model with hf_resize"
        assert "alice/tiny-magnitude" in run.stdout and "left out: notes.txt" in run.stdout


def test_push_with_default_client_in_process(model_dir, tmp_path):
    """The default (xet-enabled) client path, against a server that answers "regular" for every file."""
    with LocalHub(lfs=False) as hub:
        result = push_folder(model_dir, "alice/tiny-regular", token=TOKEN, endpoint=hub.url)
        assert hub.unexpected == []
        commits = hub.repos["alice/tiny-regular"]["commits"]
        assert len(commits) == 1 and set(commits[0]["files"]) == MODEL_FILES | {"README.md"}
        assert commits[0]["files"]["model.safetensors"] == (model_dir / "model.safetensors").read_bytes()
        assert result.commit_url and result.commit_url.startswith(f"{hub.url}/alice/tiny-regular/commit/")
        # pushing again reuses the repository (create_repo answers 409, exist_ok) and adds one more commit
        push_folder(model_dir, "alice/tiny-regular", token=TOKEN, endpoint=hub.url)
        assert len(hub.repos["alice/tiny-regular"]["commits"]) == 2


def test_rejected_token_is_one_line_error(model_dir, tmp_path):
    from hf_resize.publish import PushError

    with LocalHub() as hub, pytest.raises(PushError, match="HTTP 401"):
        push_folder(model_dir, "alice/x", token="wrong", endpoint=hub.url)


def test_push_model_saves_then_stages_with_the_card(tmp_path):
    from hf_resize.publish import push_model

    model = tiny_model("qwen3")
    hf_resize.resize(model, hf_resize.MagnitudeConfig(ratio=0.5, groups=("mlp",)))
    result = push_model(model, "me/qwen3-tiny", _tokenizer(), summary={"source": "Qwen/Qwen3-0.6B"},
                        dry_run_dir=tmp_path / "out", license="apache-2.0")
    assert set(result.files) == MODEL_FILES | {"README.md"}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "base_model: Qwen/Qwen3-0.6B" in card and "- magnitude" in card and "stock `qwen3` checkpoint" in card
