"""The OpenAI-compatible API through the official `openai` client, on stories260K (fast) and
SmolLM2-135M-Instruct (a real chat template, end-of-turn tokens)."""
import json

import pytest
import requests

GREEDY = dict(temperature=0)


def stream_chat(client, **kw):
    """Streams a chat completion; returns (content, reasoning, finish_reason, usage, chunks)."""
    content, reasoning, finish, usage, chunks = "", "", None, None, []
    for ch in client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw):
        chunks.append(ch)
        if ch.usage:
            usage = ch.usage
        for c in ch.choices:
            d = c.delta
            content += d.content or ""
            reasoning += getattr(d, "reasoning_content", None) or (d.model_extra or {}).get("reasoning_content") or ""
            if c.finish_reason:
                finish = c.finish_reason
    return content, reasoning, finish, usage, chunks


def stream_completion(client, **kw):
    text, finish, usage, pieces = "", None, None, []
    for ch in client.completions.create(stream=True, stream_options={"include_usage": True}, **kw):
        if ch.usage:
            usage = ch.usage
        for c in ch.choices:
            text += c.text
            if c.text:
                pieces.append(c.text)
            if c.finish_reason:
                finish = c.finish_reason
    return text, finish, usage, pieces


def test_health_and_models(stories):
    r = stories.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    models = stories.client().models.list()
    ids = [m.id for m in models.data]
    assert ids == ["stories260K"]
    m = stories.client().models.retrieve("stories260K")
    assert m.id == "stories260K" and m.object == "model"


def test_chat_stream_matches_nonstream(stories):
    c = stories.client()
    msgs = [{"role": "user", "content": "Tell me a story about a cat."}]
    full = c.chat.completions.create(model="stories260K", messages=msgs, max_tokens=48, **GREEDY)
    text = full.choices[0].message.content
    assert text and full.choices[0].finish_reason == "length"
    assert full.usage.completion_tokens == 48
    assert full.usage.total_tokens == full.usage.prompt_tokens + 48
    s_text, _, s_finish, s_usage, chunks = stream_chat(c, model="stories260K", messages=msgs, max_tokens=48, **GREEDY)
    assert s_text == text
    assert s_finish == "length"
    assert s_usage.completion_tokens == 48 and s_usage.prompt_tokens == full.usage.prompt_tokens
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == []  # the usage chunk comes last


def test_completion_stream_matches_nonstream(stories):
    c = stories.client()
    full = c.completions.create(model="stories260K", prompt="Once upon a time", max_tokens=40, **GREEDY)
    text = full.choices[0].text
    assert text.startswith(",") or text.startswith(" ")  # a continuation keeps its leading space
    s_text, s_finish, s_usage, _ = stream_completion(c, model="stories260K", prompt="Once upon a time", max_tokens=40,
                                                     **GREEDY)
    assert s_text == text and s_finish == "length" == full.choices[0].finish_reason
    assert s_usage.completion_tokens == full.usage.completion_tokens == 40


def test_completion_prompt_forms(stories):
    c = stories.client()
    a = c.completions.create(model="m", prompt="Once upon a time", max_tokens=12, **GREEDY)
    toks = stories.post("/tokenize", {"content": "Once upon a time", "add_special": True}).json()["tokens"]
    b = c.completions.create(model="m", prompt=toks, max_tokens=12, **GREEDY)
    assert a.choices[0].text == b.choices[0].text
    multi = c.completions.create(model="m", prompt=["Once upon a time", "The dog"], max_tokens=8, **GREEDY)
    assert [ch.index for ch in multi.choices] == [0, 1]
    assert multi.choices[0].text == c.completions.create(model="m", prompt="Once upon a time", max_tokens=8,
                                                         **GREEDY).choices[0].text
    echo = c.completions.create(model="m", prompt="Once upon a time", max_tokens=12, echo=True, **GREEDY)
    assert echo.choices[0].text == "Once upon a time" + a.choices[0].text


def test_max_completion_tokens_and_default_length(stories):
    c = stories.client()
    r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}], max_completion_tokens=7,
                                  **GREEDY)
    assert r.usage.completion_tokens == 7 and r.choices[0].finish_reason == "length"
    # Without a limit generation runs to the end of the 128-token context.
    r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}], **GREEDY)
    assert r.usage.total_tokens == 128 and r.choices[0].finish_reason == "length"


def test_stop_strings_across_token_boundaries(stories):
    c = stories.client()
    kw = dict(model="m", prompt="Once upon a time", max_tokens=60, **GREEDY)
    _, _, _, pieces = stream_completion(c, **kw)
    full = "".join(pieces)
    # A stop string made of the end of one token and the start of the next.
    k = next(i for i in range(3, len(pieces) - 1) if len(pieces[i]) >= 2 and len(pieces[i + 1]) >= 2)
    stop = pieces[k][-2:] + pieces[k + 1][:2]
    expect = full[: full.index(stop)]
    r = c.completions.create(stop=stop, **kw)
    assert r.choices[0].text == expect and r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens < 60
    s_text, s_finish, s_usage, s_pieces = stream_completion(c, stop=[stop, "never-appears"], **kw)
    assert s_text == expect and s_finish == "stop"
    assert s_usage.completion_tokens == r.usage.completion_tokens
    # (s_text is everything that was sent: no part of the stop string went out.)
    # Stop strings that never match hold text back only until the end: same text as without.
    s_text2, s_finish2, _, _ = stream_completion(c, stop=["xyzzy", full[-3:] + "QQ"], **kw)
    assert s_text2 == full and s_finish2 == "length"


def test_stop_string_in_chat_streaming(stories):
    c = stories.client()
    msgs = [{"role": "user", "content": "Tell me a story."}]
    text = c.chat.completions.create(model="m", messages=msgs, max_tokens=40, **GREEDY).choices[0].message.content
    words = text.split()
    stop = words[len(words) // 2]
    expect = text[: text.index(stop)]
    s_text, _, s_finish, _, _ = stream_chat(c, model="m", messages=msgs, max_tokens=40, stop=stop, **GREEDY)
    assert s_text == expect and s_finish == "stop"


def test_seed_reproducible_sampling(stories):
    c = stories.client()
    kw = dict(model="m", prompt="The little bird", max_tokens=30, temperature=1.0, top_p=0.9, seed=1234)
    a = c.completions.create(**kw).choices[0].text
    b = c.completions.create(**kw).choices[0].text
    assert a == b
    texts = {c.completions.create(**{**kw, "seed": s}).choices[0].text for s in range(1, 5)}
    assert len(texts) > 1


def test_n_choices_and_penalties(stories):
    c = stories.client()
    r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}], n=3, max_tokens=10,
                                  temperature=1.0, seed=7)
    assert [ch.index for ch in r.choices] == [0, 1, 2]
    assert r.usage.completion_tokens == 30
    base = c.completions.create(model="m", prompt="He liked to play with his ball. He liked", max_tokens=40, **GREEDY)
    pen = c.completions.create(model="m", prompt="He liked to play with his ball. He liked", max_tokens=40,
                               presence_penalty=1.5, frequency_penalty=1.5, **GREEDY)
    assert pen.choices[0].text != base.choices[0].text


def test_chat_logprobs(stories):
    c = stories.client()
    r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=12,
                                  logprobs=True, top_logprobs=3, **GREEDY)
    lp = r.choices[0].logprobs.content
    assert len(lp) == 12
    assert "".join(t.token for t in lp) == r.choices[0].message.content
    for t in lp:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        assert t.top_logprobs[0].token == t.token  # greedy picks the most likely token
        assert abs(t.top_logprobs[0].logprob - t.logprob) < 1e-4
        assert bytes(t.bytes).decode("utf-8", "replace") == t.token
    # Streaming carries the same logprobs.
    toks = []
    for ch in c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=12,
                                        logprobs=True, top_logprobs=3, stream=True, **GREEDY):
        if ch.choices and ch.choices[0].logprobs:
            toks += [t.token for t in ch.choices[0].logprobs.content]
    assert toks == [t.token for t in lp]


def test_completion_logprobs(stories):
    c = stories.client()
    r = c.completions.create(model="m", prompt="Once upon a time", max_tokens=10, logprobs=2, **GREEDY)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 10
    assert "".join(lp.tokens) == r.choices[0].text
    assert all(len(t) <= 2 for t in lp.top_logprobs)
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)


def test_reasoning_content_split(server_factory, stories, tmp_path):
    """A template that leaves the prompt inside <think>: the whole answer is reasoning_content
    (stories260K never closes it), in both forms, and it is exactly what the model generates."""
    from conftest import STORIES
    tmpl = tmp_path / "think.jinja"
    tmpl.write_text("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                    "{% if add_generation_prompt %}assistant: <think>\n{% endif %}")
    s = server_factory(STORIES, "--chat-template", tmpl)
    c = s.client()
    msgs = [{"role": "user", "content": "Once upon a time"}]
    r = c.chat.completions.create(model="m", messages=msgs, max_tokens=30, **GREEDY)
    msg = r.choices[0].message
    reasoning = msg.model_extra.get("reasoning_content")
    assert reasoning and msg.content == ""
    prompt = s.post("/apply-template", {"messages": msgs}).json()["prompt"]
    assert prompt.endswith("<think>\n")
    raw = c.completions.create(model="m", prompt=prompt, max_tokens=30, **GREEDY).choices[0].text
    assert reasoning.strip() == raw.strip()
    content, s_reasoning, finish, _, _ = stream_chat(c, model="m", messages=msgs, max_tokens=30, **GREEDY)
    assert content == "" and s_reasoning == reasoning and finish == "length"
    # With --reasoning-format none the same text is plain content.
    s2 = server_factory(STORIES, "--chat-template", tmpl, "--reasoning-format", "none")
    r2 = s2.client().chat.completions.create(model="m", messages=msgs, max_tokens=30, **GREEDY)
    assert r2.choices[0].message.content == raw and not r2.choices[0].message.model_extra.get("reasoning_content")


def test_smollm2_chat_template_and_eos(smol):
    c = smol.client()
    msgs = [{"role": "user", "content": "Hi"}]
    r = c.chat.completions.create(model=smol.model_id(), messages=msgs, max_tokens=24, **GREEDY)
    text = r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"  # the model ended its turn (<|im_end|>), not the limit
    assert r.usage.completion_tokens < 24 and text and "<|im_end|>" not in text
    prompt = smol.post("/apply-template", {"messages": msgs}).json()["prompt"]
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    s_text, _, s_finish, s_usage, _ = stream_chat(c, model="x", messages=msgs, max_tokens=24, **GREEDY)
    assert s_text == text and s_finish == "stop" and s_usage.completion_tokens == r.usage.completion_tokens


def test_web_page_is_self_contained(stories):
    r = stories.get("/")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    html = r.text
    # The script and the styles are the server's own files (/app.js, /app.css), nothing from elsewhere.
    assert '<script src="/app.js"' in html and '<link rel="stylesheet" href="/app.css">' in html
    js, css = stories.get("/app.js"), stories.get("/app.css")
    assert js.status_code == 200 and css.status_code == 200 and "/v1/chat/completions" in js.text
    for text in (html, js.text, css.text):
        for bad in ('src="http', "src='http", 'href="http', "@import", "cdn"):
            assert bad not in text.lower()
