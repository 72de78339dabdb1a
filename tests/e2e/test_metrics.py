"""/metrics is valid Prometheus text (checked with prometheus_client's parser) and its counters move."""
from prometheus_client.parser import text_string_to_metric_families


def test_metrics_parse_and_move(stories):
    r = stories.get("/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(r.text)}
    for name, typ in [("yiti_http_requests", "counter"), ("yiti_prompt_tokens", "counter"),
                      ("yiti_completion_tokens", "counter"), ("yiti_queue_depth", "gauge"),
                      ("yiti_active_sequences", "gauge"), ("yiti_kv_cache_tokens_used", "gauge"),
                      ("yiti_kv_cache_usage_ratio", "gauge"), ("yiti_time_to_first_token_seconds", "histogram"),
                      ("yiti_time_per_output_token_seconds", "histogram"), ("yiti_completions", "counter"),
                      ("yiti_engine_generated_tokens", "counter")]:
        assert name in fams, name
        assert fams[name].type == typ, name

    before = stories.metrics()
    chat_ok = ("yiti_http_requests_total", frozenset({("endpoint", "/v1/chat/completions"), ("status", "200")}))
    c = stories.client()
    r1 = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=9, temperature=0)
    r2 = c.completions.create(model="m", prompt="Once upon a time", max_tokens=5, temperature=0)
    stories.post("/v1/chat/completions", {"messages": []})  # a 400
    after = stories.metrics()

    def delta(name, **labels):
        k = (name, frozenset(labels.items()))
        return after.get(k, 0) - before.get(k, 0)

    assert after[chat_ok] - before.get(chat_ok, 0) == 1
    assert delta("yiti_http_requests_total", endpoint="/v1/chat/completions", status="400") == 1
    assert delta("yiti_completion_tokens_total") == 14
    assert delta("yiti_prompt_tokens_total") == r1.usage.prompt_tokens + r2.usage.prompt_tokens
    assert delta("yiti_completions_total", finish_reason="length") == 2
    assert delta("yiti_time_to_first_token_seconds_count") == 2
    assert delta("yiti_time_per_output_token_seconds_count") == 2
    assert delta("yiti_engine_generated_tokens_total") == 14
    assert delta("yiti_engine_steps_total") >= 9
    assert after[("yiti_kv_cache_tokens_capacity", frozenset())] > 0
    assert after[("yiti_queue_depth", frozenset())] == 0
    assert after[("yiti_parallel_slots", frozenset())] == 8
