"""Fixtures for the end-to-end tests: real `yiti serve` processes on free ports.

Environment:
  YITI_BIN         the yiti binary (default: build/yiti under the repository root)
  YITI_SHARED_DIR  the shared test data folder (default: ../shared next to the repository)
"""
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
YITI_BIN = Path(os.environ.get("YITI_BIN", REPO / "build" / "yiti"))
SHARED = Path(os.environ.get("YITI_SHARED_DIR", REPO.parent / "shared"))
STORIES = SHARED / "models" / "stories260K.gguf"
SMOL = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
# Extra `yiti serve` arguments for every server the tests start, e.g. "--device vulkan0 -ngl 99" to
# run the whole suite with the model on a GPU (scripts/test.sh does so once, on lavapipe).
SERVE_ARGS = os.environ.get("YITI_E2E_SERVE_ARGS", "").split()
# Set when the servers compute on a software GPU (lavapipe runs SmolLM2 at ~3 tokens/s): tests
# marked `cpu_speed` (deadlines of seconds around SmolLM2 generations) are skipped then.
SOFTWARE_GPU = os.environ.get("YITI_E2E_SOFTWARE_GPU") == "1"


def pytest_configure(config):
    config.addinivalue_line("markers", "cpu_speed: assumes the CPU's generation speed (skipped on a software GPU)")


def pytest_collection_modifyitems(config, items):
    if not SOFTWARE_GPU:
        return
    skip = pytest.mark.skip(reason="timed for the CPU's speed; the servers run on a software GPU")
    for item in items:
        if "cpu_speed" in item.keywords:
            item.add_marker(skip)


class Server:
    """A `yiti serve` child process. Its stderr is collected in `log`."""

    def __init__(self, model, *args, api_key=None, start_timeout=120):
        if not YITI_BIN.exists():
            pytest.skip(f"no yiti binary at {YITI_BIN} (build it, or set YITI_BIN)")
        if not Path(model).exists():
            pytest.skip(f"model {model} is missing")
        cmd = [str(YITI_BIN), "serve", "-m", str(model), "--host", "127.0.0.1", "--port", "0", *map(str, args),
               *SERVE_ARGS]
        if api_key:
            cmd += ["--api-key", api_key]
        self.api_key = api_key
        self.cmd = cmd
        self.log = []
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     encoding="utf-8", errors="replace")
        self._ready = threading.Event()
        self.port = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(start_timeout) or self.port is None:
            self.kill()
            raise RuntimeError("yiti serve did not start:\n" + "".join(self.log))
        self.url = f"http://127.0.0.1:{self.port}"

    def _read(self):
        for line in self.proc.stderr:
            self.log.append(line)
            m = re.search(r"listening on http://[^\s]*:(\d+)", line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self._ready.set()
        self._ready.set()

    def headers(self):
        h = {}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def client(self, **kw):
        import openai
        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.api_key or "none", max_retries=0,
                             timeout=kw.pop("timeout", 120), **kw)

    def get(self, path, **kw):
        kw.setdefault("timeout", 30)
        return requests.get(self.url + path, headers={**self.headers(), **kw.pop("headers", {})}, **kw)

    def post(self, path, json=None, **kw):
        kw.setdefault("timeout", 120)
        return requests.post(self.url + path, json=json, headers={**self.headers(), **kw.pop("headers", {})}, **kw)

    def model_id(self):
        return self.get("/v1/models").json()["data"][0]["id"]

    def metrics(self):
        """The /metrics samples as {(name, frozenset(labels.items())): value}, parsed strictly."""
        from prometheus_client.parser import text_string_to_metric_families
        text = self.get("/metrics").text
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
        return out

    def metric(self, name, **labels):
        return self.metrics().get((name, frozenset(labels.items())), 0.0)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reader.join(5)
        return self.proc.returncode

    def check_clean_exit(self):
        """After stop(): the server exited by itself with status 0 and no sanitizer reported anything."""
        rc = self.stop()
        bad = [l for l in self.log if "AddressSanitizer" in l or "runtime error:" in l or "LeakSanitizer" in l]
        assert not bad, "".join(self.log[-50:])
        assert rc == 0, f"yiti serve exited with {rc}:\n" + "".join(self.log[-30:])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="session")
def stories():
    """stories260K (128-token context, ChatML fallback), 8 parallel sequences, 1 MiB body limit."""
    s = Server(STORIES, "--parallel", 8, "--max-body-mb", 1)
    yield s
    s.check_clean_exit()


@pytest.fixture(scope="session")
def smol():
    """SmolLM2-135M-Instruct (its own chat template), 8 parallel sequences."""
    s = Server(SMOL, "--parallel", 8, "--ctx-size", 2048)
    yield s
    s.check_clean_exit()


@pytest.fixture(scope="session")
def auth_server():
    s = Server(STORIES, "--parallel", 2, api_key="sekrit-key")
    yield s
    s.check_clean_exit()


@pytest.fixture
def server_factory():
    """Starts servers for one test and stops them after it."""
    started = []

    def make(model, *args, **kw):
        s = Server(model, *args, **kw)
        started.append(s)
        return s

    yield make
    for s in started:
        s.check_clean_exit()


def wait_until(pred, timeout=10.0, interval=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(interval)
    return pred()
