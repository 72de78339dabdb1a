"""The web chat page in headless Chromium (Debian's chromium + chromium-driver, via selenium):
send a message, see the streamed answer appear, stop a generation, find the conversation again
after a reload. A screenshot goes to /tmp/yiti_webui.png."""
import json
import os
import shutil

import pytest

from conftest import SMOL

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SCREENSHOT = os.environ.get("YITI_WEBUI_SCREENSHOT", "/tmp/yiti_webui.png")


def find_browser():
    for b in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(b)
        if p:
            return p
    return None


def make_driver(browser_log=False):
    """Headless Chromium under chromedriver (skips the test when either is missing)."""
    browser, drv = find_browser(), shutil.which("chromedriver")
    if not browser or not drv:
        pytest.skip("chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1200,800",
              "--disable-extensions", "--no-first-run"):
        opts.add_argument(a)
    if browser_log:
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(drv), options=opts)
    d.set_page_load_timeout(60)
    return d


@pytest.fixture(scope="module")
def driver():
    d = make_driver()
    yield d
    d.quit()


def send(driver, text):
    box = driver.find_element(By.ID, "input")
    box.click()
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def answer(driver):
    """The last answer as {text, done, stats} (read in one script: the page re-renders it while streaming)."""
    return driver.execute_script("""
        const m = [...document.querySelectorAll('.msg.assistant')].pop();
        if (!m) return null;
        const q = (s) => { const e = m.querySelector(s); return e ? e.innerText : ''; };
        return {text: q('.content'), done: m.dataset.done === '1', stats: q('.stats')};""")


def test_chat_page_streams_an_answer(server_factory, driver):
    s = server_factory(SMOL, "--parallel", 2, "--ctx-size", 1024)
    driver.get(s.url + "/")
    # Greedy and short, so that the answer is bounded on a slow machine.
    driver.execute_script("localStorage.clear(); localStorage.setItem('yiti.settings', arguments[0]);",
                          json.dumps({"system": "", "temperature": 0, "max_tokens": 24, "api_key": ""}))
    driver.refresh()
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "model-name").text.startswith("SmolLM2"))
    send(driver, "What is the capital of France?")
    # The answer streams in: text appears while it is still being written, then it is done.
    WebDriverWait(driver, 60).until(lambda d: (answer(d) or {}).get("text", "").strip() != "")
    WebDriverWait(driver, 120).until(lambda d: answer(d)["done"])
    ans = answer(driver)
    text = ans["text"]
    assert text.strip()
    assert "tokens/s" in ans["stats"] and "tokens" in ans["stats"]
    user = driver.find_elements(By.CSS_SELECTOR, ".msg.user .content")
    assert user[-1].text == "What is the capital of France?"
    # Greedy decoding: the page shows what the API gives for that conversation.
    api = s.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "What is the capital of France?"}],
                                             max_tokens=24, temperature=0).choices[0].message.content
    assert " ".join(text.split()) == " ".join(api.split())
    # The conversation is listed in the sidebar.
    titles = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#conv-list .conv .title")]
    assert "What is the capital of France?" in titles
    driver.save_screenshot(SCREENSHOT)

    # Stop button: a long answer is cut short and the page is usable again. (The limit goes up
    # through the settings dialog.)
    driver.find_element(By.ID, "open-settings").click()
    mt = driver.find_element(By.ID, "set-maxtok")
    mt.clear()
    mt.send_keys("2000")
    driver.find_element(By.ID, "close-settings").click()
    send(driver, "Write a very long story about a dragon and a knight, with many chapters.")
    WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "stop").is_displayed())
    WebDriverWait(driver, 60).until(lambda d: len(answer(d)["text"]) > 10 or answer(d)["done"])
    stop = driver.find_element(By.ID, "stop")
    if stop.is_displayed():  # (unless the model already ended its answer)
        stop.click()
    WebDriverWait(driver, 30).until(lambda d: answer(d)["done"])
    assert driver.find_element(By.ID, "send").is_displayed()
    WebDriverWait(driver, 10).until(lambda d: s.get("/health").json()["active"] == 0)

    # Conversations survive a reload (localStorage).
    driver.refresh()
    WebDriverWait(driver, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".msg.assistant")) == 2)
    assert driver.find_elements(By.CSS_SELECTOR, ".msg.assistant .content")[0].text == text


def test_markdown_rendering(stories, driver):
    driver.get(stories.url + "/")
    # renderMarkdown builds DOM nodes (no HTML strings): look at them as HTML.
    html = driver.execute_script(
        "const d = document.createElement('div'); d.appendChild(renderMarkdown(arguments[0])); return d.innerHTML;",
        "# Title\n\nSome **bold** and *italic* and `code`.\n\n```python\nprint('<hi>')\n```\n\n- one\n- two\n\n"
        "1. first\n2. second\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n> quoted\n\n[link](https://example.com) "
        "<script>alert(1)</script> [bad](javascript:alert(1))")
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html and "<em>italic</em>" in html and "<code>code</code>" in html
    assert "print(&#39;&lt;hi&gt;&#39;)" in html or "print('&lt;hi&gt;')" in html
    assert '<span class="lang">python</span>' in html
    assert "<ul><li>one</li><li>two</li></ul>" in html and "<ol><li>first</li><li>second</li></ol>" in html
    assert "<table>" in html and "<td>1</td>" in html and "<blockquote>" in html
    assert 'href="https://example.com/"' in html  # (the address as the browser's URL parser gives it)
    assert 'rel="noopener noreferrer"' in html
    assert "<script>" not in html and "javascript:" not in html
