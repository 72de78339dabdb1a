"""Bad input never hurts the server: each gets its 4xx and an OpenAI-style error object, and the
server keeps answering."""
import socket

import openai
import pytest

CHAT = "/v1/chat/completions"
COMP = "/v1/completions"
MSG = [{"role": "user", "content": "Hi"}]


def check_error(r, status, param=None, code=None):
    assert r.status_code == status, r.text
    body = r.json()
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and err["type"]
    if param is not None:
        assert err["param"] == param, err
    if code is not None:
        assert err["code"] == code, err
    return err


def still_ok(server):
    r = server.post(COMP, {"prompt": "Once", "max_tokens": 3, "temperature": 0})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3


BAD_JSON = [
    (CHAT, {"messages": "hello"}, "messages", "invalid_type"),
    (CHAT, {}, "messages", "missing_required_parameter"),
    (CHAT, {"messages": []}, "messages", "empty_array"),
    (CHAT, {"messages": [1]}, "messages[0]", "invalid_type"),
    (CHAT, {"messages": [{"content": "hi"}]}, "messages[0].role", "missing_required_parameter"),
    (CHAT, {"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role", "invalid_value"),
    (CHAT, {"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "invalid_type"),
    (CHAT, {"messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter"),
    (CHAT, {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0].type", "unsupported_value"),
    (CHAT, {"messages": MSG, "temperature": "hot"}, "temperature", "invalid_type"),
    (CHAT, {"messages": MSG, "temperature": 2.5}, "temperature", "decimal_above_max_value"),
    (CHAT, {"messages": MSG, "top_p": -0.1}, "top_p", "decimal_below_min_value"),
    (CHAT, {"messages": MSG, "max_tokens": 0}, "max_tokens", "integer_below_min_value"),
    (CHAT, {"messages": MSG, "max_tokens": "10"}, "max_tokens", "invalid_type"),
    (CHAT, {"messages": MSG, "max_tokens": 1.5}, "max_tokens", "invalid_type"),
    (CHAT, {"messages": MSG, "max_completion_tokens": -3}, "max_completion_tokens", "integer_below_min_value"),
    (CHAT, {"messages": MSG, "n": 100}, "n", "integer_above_max_value"),
    (CHAT, {"messages": MSG, "stop": 5}, "stop", "invalid_type"),
    (CHAT, {"messages": MSG, "stop": ["a", 1]}, "stop[1]", "invalid_type"),
    (CHAT, {"messages": MSG, "stop": [""]}, "stop", "invalid_value"),
    (CHAT, {"messages": MSG, "presence_penalty": 3}, "presence_penalty", "decimal_above_max_value"),
    (CHAT, {"messages": MSG, "frequency_penalty": -2.5}, "frequency_penalty", "decimal_below_min_value"),
    (CHAT, {"messages": MSG, "seed": "abc"}, "seed", "invalid_type"),
    (CHAT, {"messages": MSG, "logprobs": "yes"}, "logprobs", "invalid_type"),
    (CHAT, {"messages": MSG, "top_logprobs": 3}, "top_logprobs", "invalid_value"),
    (CHAT, {"messages": MSG, "logprobs": True, "top_logprobs": 50}, "top_logprobs", "integer_above_max_value"),
    (CHAT, {"messages": MSG, "stream": "yes"}, "stream", "invalid_type"),
    (CHAT, {"messages": MSG, "stream_options": {"include_usage": True}}, "stream_options", "invalid_value"),
    (CHAT, {"messages": MSG, "response_format": {"type": "json_schema"}}, "response_format.json_schema", "missing_required_parameter"),
    (CHAT, {"messages": MSG, "response_format": {"type": "xml"}}, "response_format.type", "invalid_value"),
    (CHAT, {"messages": [{"role": "user", "content": "word " * 200}]}, "messages", "context_length_exceeded"),
    (COMP, {}, "prompt", "missing_required_parameter"),
    (COMP, {"prompt": 42}, "prompt", "invalid_type"),
    (COMP, {"prompt": []}, "prompt", "empty_array"),
    (COMP, {"prompt": [1, 2, 99999]}, "prompt", "invalid_value"),
    (COMP, {"prompt": [1, -5]}, "prompt", "invalid_value"),
    (COMP, {"prompt": "Once " * 200}, "prompt", "context_length_exceeded"),
    (COMP, {"prompt": "Once", "logprobs": 50}, "logprobs", "integer_above_max_value"),
    (COMP, {"prompt": "Once", "suffix": "end"}, "suffix", "unsupported_value"),
    (COMP, {"prompt": "Once", "max_tokens": -1}, "max_tokens", "integer_below_min_value"),
]


@pytest.mark.parametrize("path,body,param,code", BAD_JSON, ids=[f"{p[4:]}:{c}:{pa}" for p, _, pa, c in BAD_JSON])
def test_bad_parameters(stories, path, body, param, code):
    check_error(stories.post(path, body), 400, param, code)


def test_bad_bodies_and_routes(stories):
    h = {"Content-Type": "application/json"}
    check_error(stories.post(CHAT, data=b'{"messages": [', headers=h), 400, code="invalid_json")
    check_error(stories.post(CHAT, data=b"", headers=h), 400, code="invalid_json")
    check_error(stories.post(CHAT, data=b"[1, 2]", headers=h), 400, code="invalid_json")
    check_error(stories.post(CHAT, data=b'{"messages": "\xff\xfe"}', headers=h), 400, code="invalid_json")
    check_error(stories.post("/v1/nothing-here", {}), 404)
    check_error(stories.get("/v1/models/gpt-17"), 404, "model", "model_not_found")
    r = stories.get(CHAT)
    check_error(r, 405)
    assert "POST" in r.headers.get("Allow", "")
    check_error(stories.post("/metrics", {}), 405)
    still_ok(stories)


def test_openai_client_sees_the_errors(stories):
    c = stories.client()
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="m", messages=[], max_tokens=5)
    assert e.value.status_code == 400 and e.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="m", messages=MSG, temperature=9)
    assert e.value.body["code"] == "decimal_above_max_value"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("no-such-model")
    still_ok(stories)


def test_oversized_body_413(stories):
    # The stories fixture runs with --max-body-mb 1.
    big = {"messages": [{"role": "user", "content": "x" * (2 << 20)}]}
    check_error(stories.post(CHAT, big), 413, code="request_too_large")
    still_ok(stories)


def raw_request(server, data, timeout=10):
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    return out


def test_malformed_http(stories):
    assert raw_request(stories, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw_request(stories, b"POST /v1/completions HTTP/1.1\r\nContent-Length: abc\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw_request(stories, b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"a" * 70000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431")
    assert raw_request(stories, b"GET / HTTP/2.0\r\n\r\n").startswith(b"HTTP/1.1 505")
    # A body that never fully arrives: the client gives up, the server does not hang on it.
    with socket.create_connection(("127.0.0.1", stories.port), timeout=5) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"prompt\"")
    # Chunked request bodies work.
    body = b'{"prompt": "Once", "max_tokens": 2}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    resp = raw_request(stories, b"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked)
    assert resp.startswith(b"HTTP/1.1 200") and b'"completion_tokens":2' in resp
    still_ok(stories)


def test_api_key(auth_server):
    s = auth_server
    import requests
    r = requests.post(s.url + COMP, json={"prompt": "Once", "max_tokens": 2}, timeout=30)
    check_error(r, 401)
    r = requests.post(s.url + COMP, json={"prompt": "Once", "max_tokens": 2}, timeout=30,
                      headers={"Authorization": "Bearer wrong"})
    check_error(r, 401, code="invalid_api_key")
    r = requests.get(s.url + "/v1/models", headers={"Authorization": "Bearer sekrit-keyX"}, timeout=30)
    check_error(r, 401, code="invalid_api_key")
    import openai as oa
    bad = oa.OpenAI(base_url=s.url + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(oa.AuthenticationError):
        bad.models.list()
    good = s.client()
    assert good.completions.create(model="m", prompt="Once", max_tokens=2).usage.completion_tokens == 2
    # Health and the page need no key (the page asks for one).
    assert requests.get(s.url + "/health", timeout=10).status_code == 200
    assert requests.get(s.url + "/", timeout=10).status_code == 200


def test_garbage_does_not_disturb_running_streams(stories):
    """Random bytes, truncated and mangled requests arrive while a stream is running: the stream
    gives exactly the text it gives alone, and the server still answers afterwards."""
    import random
    import threading

    c = stories.client()
    kw = dict(model="m", prompt="Once upon a time", max_tokens=100, temperature=0)
    alone = c.completions.create(**kw).choices[0].text
    result = {}

    def stream():
        text = ""
        for ch in c.completions.create(stream=True, **kw):
            text += ch.choices[0].text if ch.choices else ""
        result["text"] = text

    t = threading.Thread(target=stream)
    t.start()
    rng = random.Random(1)
    valid = b'{"prompt": "Once", "max_tokens": 2}'
    for i in range(60):
        kind = i % 4
        if kind == 0:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        elif kind == 1:
            req = b"POST /v1/completions HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(valid), valid)
            data = req[: rng.randrange(1, len(req))]
        elif kind == 2:
            body = bytearray(valid)
            for _ in range(3):
                body[rng.randrange(len(body))] = rng.randrange(256)
            data = b"POST /v1/completions HTTP/1.1\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), bytes(body))
        else:
            data = b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{\"a\":"
        try:
            with socket.create_connection(("127.0.0.1", stories.port), timeout=5) as s:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                resp = s.recv(100)
                if resp:
                    assert resp.startswith(b"HTTP/1.1 ") and int(resp[9:12]) < 500, resp
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
            pass
    t.join(60)
    assert result["text"] == alone
    still_ok(stories)
    assert stories.alive()
