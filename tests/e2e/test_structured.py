"""Structured outputs: response_format json_object / json_schema on /v1/chat/completions and
/v1/completions, through the official `openai` client, validated with `jsonschema`.

The grammar guarantees the shape whatever the model: even stories260K (a 260K-parameter story
model) and SmolLM2 sampled at temperature 1 give documents that validate, every time."""
import json
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import pytest

from conftest import STORIES

# Nested objects, arrays, enums and $ref (kept small: stories260K's vocabulary is mostly single
# characters).
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "kind": {"enum": ["cat", "dog", "bird"]},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "owner": {"$ref": "#/$defs/person"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 3},
        "size": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}]},
    },
    "required": ["name", "kind", "age", "owner", "tags"],
    "additionalProperties": False,
    "$defs": {
        "person": {
            "type": "object",
            "properties": {
                "first": {"type": "string", "maxLength": 10},
                "vip": {"type": "boolean"},
                "pets": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1, "maxItems": 2},
            },
            "required": ["first", "vip", "pets"],
            "additionalProperties": False,
        }
    },
}

RF_SCHEMA = {"type": "json_schema", "json_schema": {"name": "pet", "schema": SCHEMA, "strict": True}}
MESSAGES = [{"role": "user", "content": "Describe a pet as JSON."}]


@pytest.fixture(scope="module")
def stories_long(request):
    """stories260K with a 512-token context (its own is 128: too short for a document of ~150
    one-character tokens after the prompt)."""
    from conftest import Server
    s = Server(STORIES, "--parallel", 4, "--ctx-size", 512)
    yield s
    s.check_clean_exit()


def check_doc(content, schema=SCHEMA):
    doc = json.loads(content)
    jsonschema.validate(doc, schema)
    return doc


def chat_many(server, seeds, temperature, **kw):
    client = server.client()

    def one(seed):
        return client.chat.completions.create(model=server.model_id(), messages=MESSAGES, seed=seed,
                                              temperature=temperature, **kw)

    with ThreadPoolExecutor(4) as ex:
        return list(ex.map(one, seeds))


@pytest.mark.parametrize("which", ["stories", pytest.param("smol", marks=pytest.mark.cpu_speed)])
def test_schema_valid_over_20_seeds(which, stories_long, smol):
    server = stories_long if which == "stories" else smol
    outs = chat_many(server, range(20), 1.0, response_format=RF_SCHEMA, max_tokens=600)
    for i, r in enumerate(outs):
        ch = r.choices[0]
        assert ch.finish_reason == "stop", (i, ch.message.content)
        check_doc(ch.message.content)
    # Not all the same: the sampling is free within the grammar.
    assert len({r.choices[0].message.content for r in outs}) > 1


@pytest.mark.cpu_speed
def test_json_object_mode(stories_long, smol):
    # stories260K tells stories inside the first string (a valid beginning of an object, cut by
    # max_tokens); SmolLM2 closes its objects.
    for server in (stories_long, smol):
        outs = chat_many(server, range(6), 1.0, response_format={"type": "json_object"}, max_tokens=300)
        for r in outs:
            ch = r.choices[0]
            assert ch.message.content.lstrip().startswith("{")
            if ch.finish_reason == "length":
                continue  # an open-ended object may run out of tokens (as with OpenAI)
            assert ch.finish_reason == "stop"
            assert isinstance(json.loads(ch.message.content), dict)
        if server is smol:
            assert any(r.choices[0].finish_reason == "stop" for r in outs)


@pytest.mark.cpu_speed
def test_greedy_is_valid_and_deterministic(smol):
    client = smol.client()
    a, b = (client.chat.completions.create(model=smol.model_id(), messages=MESSAGES, temperature=0,
                                           response_format=RF_SCHEMA, max_tokens=600) for _ in range(2))
    assert a.choices[0].message.content == b.choices[0].message.content
    check_doc(a.choices[0].message.content)


@pytest.mark.cpu_speed
def test_streaming_reassembles(smol):
    client = smol.client()
    for seed in range(3):
        stream = client.chat.completions.create(model=smol.model_id(), messages=MESSAGES, seed=seed, temperature=1.0,
                                                response_format=RF_SCHEMA, max_tokens=600, stream=True)
        parts, finish = [], None
        for chunk in stream:
            if chunk.choices:
                d = chunk.choices[0].delta
                if d.content:
                    parts.append(d.content)
                finish = chunk.choices[0].finish_reason or finish
        assert finish == "stop"
        check_doc("".join(parts))
        # The same request without streaming gives the same document.
        r = client.chat.completions.create(model=smol.model_id(), messages=MESSAGES, seed=seed, temperature=1.0,
                                           response_format=RF_SCHEMA, max_tokens=600)
        assert r.choices[0].message.content == "".join(parts)


def test_several_choices_and_logprobs(stories_long):
    client = stories_long.client()
    r = client.chat.completions.create(model=stories_long.model_id(), messages=MESSAGES, n=3, temperature=1.0, seed=7,
                                       response_format=RF_SCHEMA, max_tokens=600, logprobs=True, top_logprobs=3)
    assert len(r.choices) == 3
    for ch in r.choices:
        assert ch.finish_reason == "stop"
        check_doc(ch.message.content)
        for t in ch.logprobs.content:
            assert t.logprob <= 0
            for alt in t.top_logprobs:  # masked-out tokens never show up as alternatives
                assert alt.logprob > -1e30


def test_completions_endpoint(stories_long):
    client = stories_long.client()
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "ok": {"type": "boolean"}},
              "required": ["n", "ok"], "additionalProperties": False}
    for seed in range(5):
        r = client.completions.create(model=stories_long.model_id(), prompt="Once upon a time", max_tokens=200,
                                      temperature=1.0, seed=seed,
                                      extra_body={"response_format": {"type": "json_schema",
                                                                      "json_schema": {"name": "x", "schema": schema}}})
        assert r.choices[0].finish_reason == "stop"
        check_doc(r.choices[0].text, schema)


@pytest.mark.cpu_speed
def test_max_tokens_truncates(smol):
    r = smol.client().chat.completions.create(model=smol.model_id(), messages=MESSAGES, response_format=RF_SCHEMA,
                                              max_tokens=5, temperature=0)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5
    with pytest.raises(ValueError):
        json.loads(r.choices[0].message.content)


def test_text_format_is_free(stories):
    r = stories.client().chat.completions.create(model=stories.model_id(), messages=MESSAGES, max_tokens=8,
                                                 temperature=0, response_format={"type": "text"})
    assert r.choices[0].message.content


def test_enum_and_const_top_level(stories_long):
    client = stories_long.client()
    for schema in ({"enum": ["red", "green", 3, None]}, {"const": {"a": [1, 2]}}, {"type": "boolean"}):
        r = client.chat.completions.create(model=stories_long.model_id(), messages=MESSAGES, temperature=1.0, seed=1,
                                           response_format={"type": "json_schema",
                                                            "json_schema": {"name": "v", "schema": schema}})
        assert r.choices[0].finish_reason == "stop"
        check_doc(r.choices[0].message.content, schema)


THINK_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                  "<|im_start|>assistant\n<think>\n")


def test_reasoning_is_free_before_the_constraint(server_factory, tmp_path):
    """A prompt that ends inside <think>: the model thinks freely (no grammar, no end of
    generation) and the constraint would start after </think>. stories260K never writes
    </think>, so the answer is all reasoning, cut by max_tokens."""
    tmpl = tmp_path / "think.jinja"
    tmpl.write_text(THINK_TEMPLATE)
    s = server_factory(STORIES, "--chat-template", tmpl, "--ctx-size", 512)
    client = s.client()
    for seed in range(3):
        r = client.chat.completions.create(model=s.model_id(), messages=MESSAGES, temperature=1.0, seed=seed,
                                           response_format=RF_SCHEMA, max_tokens=60)
        ch = r.choices[0]
        assert ch.finish_reason == "length"
        assert not ch.message.content
        reasoning = ch.message.model_extra.get("reasoning_content") or ""
        assert len(reasoning) > 20 and not reasoning.lstrip().startswith("{"), reasoning
    # With the reasoning split off (--reasoning-format none) the grammar applies at once.
    s2 = server_factory(STORIES, "--chat-template", tmpl, "--ctx-size", 512, "--reasoning-format", "none")
    r = s2.client().chat.completions.create(model=s2.model_id(), messages=MESSAGES, temperature=1.0, seed=0,
                                            response_format=RF_SCHEMA, max_tokens=600)
    assert r.choices[0].finish_reason == "stop"
    check_doc(r.choices[0].message.content)


def error_of(server, rf, path="/v1/chat/completions"):
    body = {"model": "x", "response_format": rf, "max_tokens": 4}
    if path.endswith("chat/completions"):
        body["messages"] = MESSAGES
    else:
        body["prompt"] = "Once"
    r = server.post(path, json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error"
    return err


@pytest.mark.parametrize("schema,keyword,path", [
    ({"type": "object", "properties": {"x": {"not": {"type": "string"}}}}, "not", "#/properties/x"),
    ({"type": "object", "patternProperties": {"^a": {"type": "string"}}}, "patternProperties", "#"),
    ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "uniqueItems", "#"),
    ({"$ref": "https://example.com/s.json"}, "$ref", "#"),
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, "$ref", "#/properties/a"),
])
def test_bad_schema_400(stories, schema, keyword, path):
    for ep in ("/v1/chat/completions", "/v1/completions"):
        err = error_of(stories, {"type": "json_schema", "json_schema": {"name": "bad", "schema": schema}}, ep)
        assert f"'{keyword}'" in err["message"], err
        assert path in err["message"], err
        assert err["param"] == "response_format.json_schema.schema"
    # The openai client raises BadRequestError with the same message.
    import openai
    with pytest.raises(openai.BadRequestError) as ei:
        stories.client().chat.completions.create(
            model=stories.model_id(), messages=MESSAGES, max_tokens=4,
            response_format={"type": "json_schema", "json_schema": {"name": "bad", "schema": schema}})
    assert keyword in str(ei.value)


@pytest.mark.parametrize("rf,param", [
    ("json", "response_format"),
    (["json_object"], "response_format"),
    ({"type": "xml"}, "response_format.type"),
    ({"type": 3}, "response_format.type"),
    ({}, "response_format.type"),
    ({"type": "json_schema"}, "response_format.json_schema"),
    ({"type": "json_schema", "json_schema": "x"}, "response_format.json_schema"),
    ({"type": "json_schema", "json_schema": {"name": 5, "schema": {}}}, "response_format.json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "a", "schema": []}}, "response_format.json_schema.schema"),
    ({"type": "json_schema", "json_schema": {"name": "a", "schema": {}, "strict": "yes"}},
     "response_format.json_schema.strict"),
])
def test_bad_response_format_400(stories, rf, param):
    for ep in ("/v1/chat/completions", "/v1/completions"):
        err = error_of(stories, rf, ep)
        assert err["param"] == param, err


def test_server_survives(stories, stories_long):
    assert stories.alive() and stories_long.alive()
    assert stories.get("/health").status_code == 200


@pytest.mark.skipif(not __import__("os").environ.get("YITI_BENCH_STRUCTURED"),
                    reason="a benchmark, not a test: set YITI_BENCH_STRUCTURED=1 to run it")
def test_bench_constrained_overhead(smol):
    """Per-token decode time on SmolLM2, constrained (RF_SCHEMA, warm mask cache) against
    unconstrained, from the engine's time-per-output-token counters in /metrics. One request at a
    time, the two kinds interleaved (the machine may be shared). Prints the figures."""
    import time
    client = smol.client()
    model = smol.model_id()

    def engine_tpot():
        m = smol.metrics()
        return (m.get(("yiti_engine_time_per_output_token_seconds_sum", frozenset()), 0.0),
                m.get(("yiti_engine_time_per_output_token_seconds_count", frozenset()), 0.0))

    top_k = int(__import__("os").environ.get("YITI_BENCH_TOPK", "0"))

    def run(kind, seed, n=160):
        kw = dict(model=model, messages=MESSAGES, temperature=0.8, seed=seed, max_tokens=n,
                  extra_body={"top_k": top_k})
        if kind == "schema":
            kw["response_format"] = RF_SCHEMA
        elif kind == "json_object":
            kw["response_format"] = {"type": "json_object"}
        else:
            kw["extra_body"]["ignore_eos"] = True
        s0, c0 = engine_tpot()
        t0 = time.perf_counter()
        r = client.chat.completions.create(**kw)
        wall = time.perf_counter() - t0
        s1, c1 = engine_tpot()
        return s1 - s0, c1 - c0, wall, r.usage.completion_tokens

    # Cold: the first request of a schema fills its mask cache.
    cold = run("schema", 1000)
    run("json_object", 1000)
    tot = {k: [0.0, 0.0, 0.0, 0] for k in ("free", "schema", "json_object")}
    rounds = int(__import__("os").environ.get("YITI_BENCH_ROUNDS", "8"))
    for i in range(rounds):
        # The unconstrained run generates as many tokens as the constrained one before it (the
        # same positions: attention costs grow with the context).
        for kind in ("schema", "free", "json_object", "free"):
            s, c, wall, n = run(kind, i, n=tot_n if kind == "free" else 160)
            if kind != "free":
                tot_n = n
            t = tot[kind]
            t[0] += s; t[1] += c; t[2] += wall; t[3] += n
    base = tot["free"][0] / tot["free"][1]
    print()
    print(f"cold schema request: {cold[0] / max(cold[1], 1) * 1000:.2f} ms/token over {cold[3]} tokens")
    for k, (s, c, wall, n) in tot.items():
        per = s / c
        print(f"{k:12s} {per * 1000:.2f} ms/token (engine, {int(c)} steps), {wall / n * 1000:.2f} ms/token wall "
              f"({n} tokens), overhead {100 * (per / base - 1):+.1f}%")
