"""A misbehaving LLM server costs its prompts, never the run or the answers already made; a read-only cache serves."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.llm.helpers import copy_prepared, llm_params, run_stage
from ur4rec.paths import cache_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
GOOD = "Enjoys quiet films about families and friendship."


class Broken(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat server whose first answer has no choices and second a lone surrogate."""

    count = 0
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        with Broken.lock:
            Broken.count += 1
            n = Broken.count
        choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": GOOD}}
        if n == 2:
            choice["message"]["content"] = "Likes \ud800 films"  # json.dumps escapes it; the client decodes it back
        body = {"id": f"c{n}", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [] if n == 1 else [choice],
                "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Broken.count = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_empty_choices_and_a_lone_surrogate_fail_their_prompts_only(server, tmp_path, prepared, tiny_llama):
    paths = copy_prepared(prepared, tmp_path / "data")
    pl.read_parquet(paths.prepared / "users.parquet").head(4).write_parquet(paths.prepared / "users.parquet")
    params = llm_params(tiny_llama, "openai", f"llm.openai.base_url={server}", "llm.openai.keyless=true",
                        "llm.openai.concurrency=1", "llm.openai.max_attempts=0", "llm.flush_every=8")
    summary = run_stage(params, paths)
    statuses = {**summary["status"]["user"]}
    for status, n in summary["status"]["item"].items():
        statuses[status] = statuses.get(status, 0) + n
    assert statuses == {"failed": 2, "ok": summary["unique_prompts"] - 2}
    # Nothing else lost: every other answer is in the cache (the flush holding the surrogate wrote its buffer).
    root = cache_dir("llm", paths.root)
    assert sum(pq.read_metadata(s).num_rows for s in root.glob("*.parquet")) == summary["unique_prompts"] - 2
    # The failed prompts are asked again next time, and only they.
    again = run_stage(params, paths)
    assert again["generated"] == 2 and again["cache_hits"] == summary["unique_prompts"] - 2


def _can_mount_read_only(tmp_path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    proc = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind {probe} {probe} && "
                           f"mount -o remount,bind,ro {probe} && ! touch {probe}/x"], capture_output=True)
    return proc.returncode == 0


def test_a_cache_mounted_read_only_serves_every_lookup(tmp_path, prepared, tiny_llama):
    """The whole cache folder (shards and the lookup log beside them) on a read-only mount: EROFS, for real."""
    if shutil.which("unshare") is None or not _can_mount_read_only(tmp_path):
        pytest.skip("needs `unshare -m` and bind mounts (a private mount namespace) to mount a folder read-only")
    paths = copy_prepared(prepared, tmp_path / "data")
    pl.read_parquet(paths.prepared / "users.parquet").head(4).write_parquet(paths.prepared / "users.parquet")
    shared = tmp_path / "shared"
    params = llm_params(tiny_llama, "transformers", f"llm.cache_dir={shared / 'llm'}")
    first = run_stage(params, paths)
    (shared / "llm.lookups.jsonl").write_text("")  # exists, so the append itself meets the read-only mount
    before = pl.read_parquet(paths.llm / "user_preferences.parquet")
    shutil.rmtree(paths.llm)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    script = f'mount --bind {shared} {shared} && mount -o remount,bind,ro {shared} && exec "$@"'
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", sys.executable, "-m", "ur4rec", "generate",
                           "-d", "ml-100k", "--params", str(params_file)], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{first['unique_prompts']} cached, 0 generated" in proc.stdout
    assert "Read-only file system" in proc.stderr  # the lookup log could not be written: said, not fatal
    after = pl.read_parquet(paths.llm / "user_preferences.parquet")
    assert after.select("user_id", "text").equals(before.select("user_id", "text"))
    assert (shared / "llm.lookups.jsonl").read_text() == ""
