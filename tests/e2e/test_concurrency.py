"""Many clients at once: answers do not depend on what else is in the batch, a client that goes
away frees its sequence at once, and shutdown ends open streams properly."""
import json
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import SMOL, wait_until

STORY_PROMPTS = ["Once upon a time", "The dog", "Lily and Tom", "One day, a little", "The sun was", "Tim had a red",
                 "In the park", "A big bird"]


def run_alone_then_together(fn, jobs):
    alone = [fn(j) for j in jobs]
    with ThreadPoolExecutor(len(jobs)) as ex:
        together = list(ex.map(fn, jobs))
    return alone, together


def test_eight_concurrent_completions_match_alone(stories):
    c = stories.client()

    def greedy(p):
        return c.completions.create(model="m", prompt=p, max_tokens=48, temperature=0).choices[0].text

    alone, together = run_alone_then_together(greedy, STORY_PROMPTS)
    assert together == alone
    assert len(set(alone)) == len(alone)

    def sampled(i):  # seeded sampling too, and through streaming
        text = ""
        for ch in c.completions.create(model="m", prompt=STORY_PROMPTS[i], max_tokens=40, temperature=0.9, seed=100 + i,
                                       stream=True):
            text += ch.choices[0].text if ch.choices else ""
        return text

    alone, together = run_alone_then_together(sampled, list(range(8)))
    assert together == alone


@pytest.mark.cpu_speed
def test_eight_concurrent_chats_match_alone_smollm2(smol):
    c = smol.client()
    questions = ["Hi", "What is 2+2?", "Name a color.", "Say hello.", "What is the sun?", "Name a fruit.",
                 "Count to three.", "What is a cat?"]

    def ask(q):
        r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": q}], max_tokens=6,
                                      temperature=0)
        return r.choices[0].message.content, r.usage.completion_tokens

    alone, together = run_alone_then_together(ask, questions)
    assert together == alone


def sse_events(resp):
    for line in resp.iter_lines():
        if line.startswith(b"data: "):
            yield line[6:].decode()


def open_stream(server, path, body, n_events):
    """Starts a streaming request on a raw socket and reads until n_events data lines came."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    payload = json.dumps(body).encode()
    s.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
              % (path.encode(), len(payload), payload))
    got = b""
    while got.count(b"data: ") < n_events:
        chunk = s.recv(4096)
        assert chunk, got
        got += chunk
    assert got.startswith(b"HTTP/1.1 200")
    return s


@pytest.mark.cpu_speed
def test_disconnected_stream_frees_its_slot(smol):
    base_cancelled = smol.metric("yiti_engine_requests_cancelled_total")
    body = {"messages": [{"role": "user", "content": "Write a very long story about dragons."}], "max_tokens": 1500,
            "stream": True, "ignore_eos": True, "temperature": 0}
    s = open_stream(smol, "/v1/chat/completions", body, 4)
    assert smol.metric("yiti_active_sequences") == 1
    s.close()  # the client goes away mid-stream
    t0 = time.time()
    assert wait_until(lambda: smol.metric("yiti_active_sequences") == 0, timeout=5)
    assert time.time() - t0 < 3
    assert smol.metric("yiti_engine_requests_cancelled_total") == base_cancelled + 1
    assert smol.get("/health").json()["active"] == 0
    # Non-streaming requests are cancelled too when their client leaves.
    s = socket.create_connection(("127.0.0.1", smol.port))
    payload = json.dumps({"prompt": "Once upon a time", "max_tokens": 1500, "ignore_eos": True}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
              % (len(payload), payload))
    assert wait_until(lambda: smol.metric("yiti_active_sequences") == 1, timeout=10)
    s.close()
    assert wait_until(lambda: smol.metric("yiti_active_sequences") == 0, timeout=5)
    assert smol.metric("yiti_engine_requests_cancelled_total") == base_cancelled + 2


def test_shutdown_ends_open_streams(server_factory):
    s = server_factory(SMOL, "--parallel", 2)
    body = {"messages": [{"role": "user", "content": "Tell me a long story."}], "max_tokens": 1000, "stream": True,
            "ignore_eos": True}
    r = requests.post(s.url + "/v1/chat/completions", json=body, stream=True, timeout=60)
    events = sse_events(r)
    for _ in range(3):
        next(events)
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    rest = list(events)  # the stream ends: an error event, then [DONE]
    assert rest[-1] == "[DONE]"
    err = json.loads(rest[-2])
    assert err["error"]["code"] == "server_shutting_down"
    assert s.proc.wait(15) == 0
    assert time.time() - t0 < 10
    assert any("shutting down" in line for line in s.log)
