// The web chat page: the HTML document, its styles (/app.css) and its script (/app.js). No CDN, no
// external files, works offline. Conversations live in the browser's localStorage; answers stream
// from /v1/chat/completions.
//
// Security: model output, user input, conversation titles, the model name and the settings are
// untrusted text. The script turns them into the page only through DOM calls (createElement,
// text nodes / textContent, setAttribute with fixed attribute names, links only to http:, https:
// and mailto: addresses checked with the browser's own URL parser); it never builds HTML from them
// and never assigns innerHTML & co. The page carries no inline script, no inline style and no
// inline event handler, so webui_csp() can forbid all of those (and Trusted Types make Chromium
// refuse any HTML-string sink outright).
#include "server/webui.h"

namespace yiti::server {

namespace {

const char* const k_html = R"YITIHTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>yiti chat</title>
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<aside id="sidebar">
  <header><span class="logo"></span>yiti</header>
  <button id="new-chat" type="button">+ New chat</button>
  <div id="conv-list"></div>
  <div id="side-foot"><button id="open-settings" type="button">&#9881; Settings</button></div>
</aside>
<main id="main">
  <div id="topbar"><span class="model" id="model-name">&hellip;</span><span class="status" id="status"></span></div>
  <div id="messages"></div>
  <div id="composer">
    <form id="form">
      <textarea id="input" rows="1" placeholder="Send a message (Enter to send, Shift+Enter for a new line)"></textarea>
      <button id="send" type="submit">Send</button>
      <button id="stop" type="button">Stop</button>
    </form>
  </div>
</main>
<div id="settings">
  <div class="panel">
    <h3>Settings</h3>
    <label for="set-system">System prompt</label>
    <textarea id="set-system" rows="3"></textarea>
    <div class="row">
      <div><label for="set-temp">Temperature</label><input id="set-temp" type="number" min="0" max="2" step="0.1"></div>
      <div><label for="set-maxtok">Max tokens (empty: no limit)</label><input id="set-maxtok" type="number" min="1"></div>
    </div>
    <label for="set-key">API key (if the server needs one)</label>
    <input id="set-key" type="password" autocomplete="off">
    <label class="check" for="set-remember"><input id="set-remember" type="checkbox">
      <span>Remember the key on this device (it is then stored in this browser's local storage; otherwise it is
      kept only while this page is open)</span></label>
    <div class="buttons"><button id="close-settings" type="button">Done</button></div>
  </div>
</div>
</body>
</html>
)YITIHTML";

const char* const k_css = R"YITICSS(:root {
  --bg: #f7f7f8; --panel: #ffffff; --side: #202123; --side-fg: #ececf1; --fg: #1f2328; --muted: #6b7280;
  --border: #e5e7eb; --accent: #2563eb; --accent-fg: #fff; --user: #e8effd; --code-bg: #0f172a; --code-fg: #e2e8f0;
  --think: #f3f4f6;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #17181c; --panel: #1f2126; --side: #111214; --fg: #e6e6e6; --muted: #9ca3af; --border: #30333a;
          --user: #26324a; --think: #262830; }
}
* { box-sizing: border-box; }
html, body { height: 100%; margin: 0; }
body { font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--fg);
       display: flex; }
#sidebar { width: 260px; background: var(--side); color: var(--side-fg); display: flex; flex-direction: column; flex-shrink: 0; }
#sidebar header { padding: 14px; font-weight: 600; font-size: 17px; display: flex; align-items: center; gap: 8px; }
#sidebar header .logo { width: 22px; height: 22px; border-radius: 6px; background: linear-gradient(135deg,#60a5fa,#a78bfa); }
#new-chat { margin: 0 12px 10px; padding: 9px; border: 1px solid #4b5563; border-radius: 8px; background: transparent;
            color: var(--side-fg); cursor: pointer; text-align: left; font-size: 14px; }
#new-chat:hover { background: #2b2c2f; }
#conv-list { flex: 1; overflow-y: auto; padding: 0 8px; }
.conv { padding: 8px 10px; border-radius: 8px; cursor: pointer; font-size: 14px; display: flex; align-items: center; gap: 6px; }
.conv:hover { background: #2b2c2f; }
.conv.active { background: #343541; }
.conv .title { flex: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.conv .del { visibility: hidden; border: none; background: none; color: #9ca3af; cursor: pointer; font-size: 14px; }
.conv:hover .del { visibility: visible; }
#side-foot { padding: 10px 12px; border-top: 1px solid #2f3033; font-size: 13px; }
#side-foot button { background: none; border: none; color: var(--side-fg); cursor: pointer; padding: 4px 0; font-size: 13px; }
#main { flex: 1; display: flex; flex-direction: column; min-width: 0; }
#topbar { padding: 10px 18px; border-bottom: 1px solid var(--border); background: var(--panel); display: flex; align-items: center;
          gap: 10px; font-size: 14px; }
#topbar .model { font-weight: 600; }
#topbar .status { color: var(--muted); margin-left: auto; font-size: 13px; }
#messages { flex: 1; overflow-y: auto; padding: 20px 0 30px; }
.msg { max-width: 820px; margin: 0 auto; padding: 10px 24px; display: flex; gap: 12px; }
.msg .avatar { width: 28px; height: 28px; border-radius: 6px; flex-shrink: 0; display: flex; align-items: center;
               justify-content: center; font-size: 13px; font-weight: 600; color: #fff; }
.msg.user .avatar { background: #6366f1; }
.msg.assistant .avatar { background: #10a37f; }
.msg .body { flex: 1; min-width: 0; }
.msg.user .content { background: var(--user); padding: 8px 12px; border-radius: 10px; white-space: pre-wrap; display: inline-block; }
.msg .content { overflow-wrap: anywhere; }
.msg .content p { margin: 0 0 10px; }
.msg .content p:last-child { margin-bottom: 0; }
.msg .content pre { background: var(--code-bg); color: var(--code-fg); padding: 12px 14px; border-radius: 8px; overflow-x: auto;
                    position: relative; font-size: 13px; line-height: 1.45; }
.msg .content pre .lang { position: absolute; top: 4px; right: 60px; font-size: 11px; color: #94a3b8; }
.msg .content pre .copy { position: absolute; top: 4px; right: 6px; font-size: 11px; background: #334155; color: #e2e8f0;
                          border: none; border-radius: 4px; padding: 2px 7px; cursor: pointer; }
.msg .content code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.msg .content :not(pre) > code { background: rgba(127,127,127,.15); padding: 1px 5px; border-radius: 4px; font-size: 13px; }
.msg .content blockquote { margin: 0 0 10px; padding-left: 12px; border-left: 3px solid var(--border); color: var(--muted); }
.msg .content table { border-collapse: collapse; margin: 0 0 10px; }
.msg .content th, .msg .content td { border: 1px solid var(--border); padding: 4px 9px; }
.msg .content ul, .msg .content ol { margin: 0 0 10px; padding-left: 24px; }
.msg .content h1, .msg .content h2, .msg .content h3, .msg .content h4 { margin: 12px 0 8px; line-height: 1.3; }
.msg .content h1 { font-size: 1.4em; } .msg .content h2 { font-size: 1.25em; } .msg .content h3 { font-size: 1.1em; }
.msg .content a { color: var(--accent); }
details.reasoning { background: var(--think); border-radius: 8px; padding: 6px 12px; margin-bottom: 10px; font-size: 14px;
                    color: var(--muted); }
details.reasoning summary { cursor: pointer; user-select: none; font-weight: 500; }
details.reasoning .rcontent { margin-top: 6px; white-space: normal; }
.msg .meta { font-size: 12px; color: var(--muted); margin-top: 6px; display: flex; gap: 12px; align-items: center; }
.msg .meta button { border: none; background: none; color: var(--muted); cursor: pointer; font-size: 12px; padding: 0; }
.msg .meta button:hover { color: var(--fg); }
.msg .error { color: #dc2626; font-size: 14px; }
.cursor::after { content: "\258D"; animation: blink 1s steps(1) infinite; margin-left: 1px; }
@keyframes blink { 50% { opacity: 0; } }
#empty { max-width: 620px; margin: 12vh auto 0; text-align: center; color: var(--muted); }
#empty h1 { color: var(--fg); font-size: 28px; margin-bottom: 6px; }
#composer { padding: 12px 20px 18px; background: linear-gradient(transparent, var(--bg) 30%); }
#composer form { max-width: 820px; margin: 0 auto; display: flex; gap: 8px; align-items: flex-end; background: var(--panel);
                 border: 1px solid var(--border); border-radius: 12px; padding: 8px; box-shadow: 0 2px 10px rgba(0,0,0,.05); }
#input { flex: 1; border: none; outline: none; resize: none; font: inherit; background: transparent; color: var(--fg);
         max-height: 200px; padding: 6px; }
#send, #stop { border: none; border-radius: 8px; padding: 8px 16px; font-size: 14px; cursor: pointer; }
#send { background: var(--accent); color: var(--accent-fg); }
#send:disabled { opacity: .5; cursor: default; }
#stop { background: #dc2626; color: #fff; display: none; }
body.busy #send { display: none; }
body.busy #stop { display: inline-block; }
#settings { position: fixed; inset: 0; background: rgba(0,0,0,.4); display: none; align-items: center; justify-content: center; }
#settings.open { display: flex; }
#settings .panel { background: var(--panel); color: var(--fg); border-radius: 12px; padding: 20px 22px; width: 440px;
                   max-width: 92vw; }
#settings h3 { margin: 0 0 6px; }
#settings label { display: block; font-size: 13px; margin: 10px 0 4px; color: var(--muted); }
#settings label.check { display: flex; align-items: flex-start; gap: 8px; }
#settings input, #settings textarea { width: 100%; padding: 7px 9px; border: 1px solid var(--border); border-radius: 6px;
                                      background: var(--bg); color: var(--fg); font: inherit; }
#settings input[type=checkbox] { width: auto; padding: 0; margin: 3px 0 0; flex-shrink: 0; }
#settings .row { display: flex; gap: 10px; }
#settings .row > div { flex: 1; }
#settings .buttons { margin-top: 16px; text-align: right; }
#settings .buttons button { border: none; border-radius: 6px; padding: 7px 14px; cursor: pointer; background: var(--accent);
                            color: #fff; }
@media (max-width: 700px) { #sidebar { display: none; } }
)YITICSS";

const char* const k_js = R"YITIJS("use strict";
// Everything that came from a message, a conversation title, the model name or the settings reaches the
// page as text nodes / textContent or through setAttribute with a fixed attribute name: never as HTML.

// ---- storage ------------------------------------------------------------------------------
const LS_CONVS = "yiti.conversations", LS_SETTINGS = "yiti.settings", LS_CURRENT = "yiti.current";
function load(key, def) { try { const v = JSON.parse(localStorage.getItem(key)); return v == null ? def : v; } catch (e) { return def; } }
function save(key, v) { try { localStorage.setItem(key, JSON.stringify(v)); } catch (e) { /* quota: keep going */ } }
const str = (v) => (typeof v === "string" ? v : v == null ? "" : String(v));
// Saved conversations are checked on the way in: whatever the stored JSON holds, a conversation is
// {id, title, messages: [{role: "user"|"assistant", content, ...}], updated}.
function cleanConvs(v) {
  if (!Array.isArray(v)) return [];
  const out = [];
  for (const c of v) {
    if (!c || typeof c !== "object" || !Array.isArray(c.messages)) continue;
    const msgs = [];
    for (const m of c.messages) {
      if (!m || typeof m !== "object") continue;
      const x = Object.assign({}, m);
      x.role = m.role === "user" ? "user" : "assistant";
      x.content = str(m.content);
      if (m.reasoning != null) x.reasoning = str(m.reasoning);
      if (m.error != null) x.error = str(m.error);
      msgs.push(x);
    }
    out.push({ id: str(c.id) || newId(), title: str(c.title), messages: msgs, updated: +c.updated || 0 });
  }
  return out;
}

// Settings in localStorage "yiti.settings": {system, temperature, max_tokens, remember_key, api_key}.
// The API key is written there only when the user ticked "Remember the key on this device"
// (remember_key: true). Otherwise it lives in memory only (the variable apiKey below; not in
// sessionStorage either): it is gone after a reload or in a new tab and has to be entered again.
// Older versions of this page always saved api_key: such a key is still used for this page load,
// but it is removed from localStorage at once unless remember_key is set.
let settings, apiKey = "", rememberKey = false;
function saveSettings() {
  const s = { system: settings.system, temperature: settings.temperature, max_tokens: settings.max_tokens };
  if (rememberKey) { s.remember_key = true; s.api_key = apiKey; }
  save(LS_SETTINGS, s);
}
(function loadSettings() {
  let raw = load(LS_SETTINGS, {});
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) raw = {};
  settings = { system: str(raw.system), temperature: raw.temperature == null ? 0.7 : str(raw.temperature),
               max_tokens: str(raw.max_tokens) };
  apiKey = str(raw.api_key);
  rememberKey = raw.remember_key === true;
  if ("api_key" in raw && !rememberKey) saveSettings();  // migration: the key leaves localStorage
})();

function newId() { return Date.now().toString(36) + Math.random().toString(36).slice(2, 8); }
let convs = cleanConvs(load(LS_CONVS, []));
let currentId = str(load(LS_CURRENT, "")) || null;
let modelId = null;
let controller = null;

const $ = (id) => document.getElementById(id);
const messagesEl = $("messages"), input = $("input");

function current() { return convs.find((c) => c.id === currentId) || null; }
function persist() { save(LS_CONVS, convs); save(LS_CURRENT, currentId); }

// An element with an optional class and text.
function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

// ---- markdown -----------------------------------------------------------------------------
// renderMarkdown(text) returns a DocumentFragment. Blocks: fenced code (with a language label and a
// copy button), headings, rules, blockquotes, tables, lists, paragraphs. Inline: code spans, links,
// images (shown as links, never loaded), auto-links, bold, italic, strikethrough, line breaks.
const MAX_DEPTH = 12;        // nesting of blockquotes and of inline markup
const LINK_SCHEMES = ["http:", "https:", "mailto:"];

// The address a link may point to, or null. The browser's own URL parser decides what the address
// is (so letter case, blanks, tabs, control characters or entities make no difference: what is
// checked is what a click would open); relative addresses resolve against this page. Only http:,
// https: and mailto: pass: no javascript:, data:, vbscript:, blob:, file: ...
function safeHref(raw) {
  let u;
  try { u = new URL(raw, document.baseURI); } catch (e) { return null; }
  return LINK_SCHEMES.includes(u.protocol) ? u.href : null;
}
function linkEl(href, title) {
  const a = document.createElement("a");
  a.setAttribute("href", href);
  a.setAttribute("target", "_blank");
  a.setAttribute("rel", "noopener noreferrer");
  if (title) a.setAttribute("title", title);
  return a;
}

// A code span at s[i] (a run of n backticks, text, the same run): {text, len} or null.
function codeSpan(s, i) {
  let n = 0;
  while (s[i + n] === "`") n++;
  const run = "`".repeat(n);
  let end = s.indexOf("\n", i);
  if (end < 0) end = s.length;
  let j = i + n;
  for (;;) {
    const k = s.indexOf(run, j);
    if (k < 0 || k + n > end) return null;
    if (s[k + n] === "`") { j = k + n; while (s[j] === "`") j++; continue; }  // a longer run does not close it
    let t = s.slice(i + n, k);
    if (!t) return null;
    if (t.length > 2 && t[0] === " " && t[t.length - 1] === " " && t.trim()) t = t.slice(1, -1);
    return { text: t, len: k + n - i };
  }
}

// A link at s[i] == "[": [text](destination) or [text](<destination> "title"): {text, dest, title, len} or null.
function parseLink(s, i) {
  let depth = 0, j = i;
  const lim = Math.min(s.length, i + 2000);
  for (; j < lim; j++) {
    if (s[j] === "[") depth++;
    else if (s[j] === "]" && --depth === 0) break;
  }
  if (j >= lim || s[j + 1] !== "(") return null;
  const text = s.slice(i + 1, j);
  let k = j + 2;
  const blanks = () => { while (s[k] === " " || s[k] === "\t") k++; };
  blanks();
  let dest;
  if (s[k] === "<") {
    const e = s.indexOf(">", k);
    if (e < 0) return null;
    dest = s.slice(k + 1, e);
    if (/[<\n]/.test(dest)) return null;
    k = e + 1;
  } else {
    const st = k;
    let par = 0;
    for (; k < s.length && k < st + 4000; k++) {
      const c = s[k];
      if (c === "(") par++;
      else if (c === ")") { if (par === 0) break; par--; }
      else if (c === " " || c === "\t" || c === "\n") break;
    }
    dest = s.slice(st, k);
  }
  let title = "";
  const k0 = k;
  blanks();
  if (k > k0 && (s[k] === '"' || s[k] === "'")) {
    const e = s.indexOf(s[k], k + 1);
    if (e < 0) return null;
    title = s.slice(k + 1, e);
    k = e + 1;
    blanks();
  }
  if (s[k] !== ")") return null;
  return { text: text, dest: dest, title: title, len: k + 1 - i };
}

const RE_AUTO = /https?:\/\/[^\s<>)]+/y;
const RE_BOTH = /\*\*\*([^*\n]+)\*\*\*|___([^_\n]+)___/y;
const RE_STRONG = /\*\*([^*\n]+)\*\*|__([^_\n]+)__/y;
const RE_EM = /\*([^*\n]+)\*(?!\w)|_([^_\n]+)_(?!\w)/y;
const RE_DEL = /~~([^~\n]+)~~/y;

// The inline markup of s, appended to parent. inLink: inside a link's text (no links in there).
function inline(s, parent, inLink, depth) {
  depth = depth || 0;
  let text = "", i = 0;
  const flush = () => { if (text) { parent.appendChild(document.createTextNode(text)); text = ""; } };
  const put = (node, len) => { flush(); parent.appendChild(node); i += len; return node; };
  const at = (re) => { re.lastIndex = i; return re.exec(s); };
  while (i < s.length) {
    const c = s[i], prev = i ? s[i - 1] : "";
    let m;
    if (c === "\n") { put(h("br"), 1); continue; }
    if (c === "`") {
      if ((m = codeSpan(s, i))) { put(h("code", "", m.text), m.len); continue; }
      while (s[i] === "`") text += s[i++];  // an unmatched run stays text
      continue;
    }
    const nested = depth < MAX_DEPTH;
    if (nested && !inLink && (c === "[" || (c === "!" && s[i + 1] === "["))) {
      const img = c === "!";
      if ((m = parseLink(s, img ? i + 1 : i))) {
        const href = safeHref(m.dest.trim());
        // An image is shown as a link to it (nothing is loaded); a link to a refused address keeps its text only.
        const el = href ? linkEl(href, m.title) : h("span");
        if (img) el.textContent = m.text || "image";
        else if (m.text) inline(m.text, el, true, depth + 1);
        else el.textContent = href ? m.dest.trim() : "";
        put(el, m.len + (img ? 1 : 0));
        continue;
      }
    }
    if (!inLink && (c === "h" || c === "<") && (!prev || /[\s(]/.test(prev))) {
      const angle = c === "<";
      if (angle) i++;
      if ((m = at(RE_AUTO))) {
        let url = m[0];
        if (angle) {
          const close = url.indexOf(">");
          if (close >= 0) url = url.slice(0, close);
        } else url = url.replace(/[.,;:!?'"*_~]+$/, "");
        const href = safeHref(url);
        if (href && (!angle || s[i + url.length] === ">")) {
          const a = linkEl(href, "");
          a.textContent = url;
          if (angle) { flush(); i--; put(a, url.length + 2); } else put(a, url.length);
          continue;
        }
      }
      if (angle) i--;
    }
    if (nested && (c === "*" || c === "_")) {
      if (!/[*\w]/.test(prev) && (m = at(RE_BOTH))) {
        inline(m[1] || m[2], put(h("em"), m[0].length).appendChild(h("strong")), inLink, depth + 2);
        continue;
      }
      if ((m = at(RE_STRONG))) { inline(m[1] || m[2], put(h("strong"), m[0].length), inLink, depth + 1); continue; }
      if (!/[*\w]/.test(prev) && (m = at(RE_EM))) { inline(m[1] || m[2], put(h("em"), m[0].length), inLink, depth + 1); continue; }
    }
    if (nested && c === "~" && (m = at(RE_DEL))) { inline(m[1], put(h("del"), m[0].length), inLink, depth + 1); continue; }
    text += c;
    i++;
  }
  flush();
}
function splitRow(line) {
  let t = line.trim();
  if (t.startsWith("|")) t = t.slice(1);
  if (t.endsWith("|")) t = t.slice(0, -1);
  return t.split("|").map((c) => c.trim());
}
function renderMarkdown(src, depth) {
  depth = depth || 0;
  const frag = document.createDocumentFragment();
  const add = (e) => frag.appendChild(e);
  const lines = str(src).replace(/\r\n?/g, "\n").split("\n");
  let i = 0, para = [];
  const flush = () => { if (para.length) { inline(para.join("\n"), add(h("p"))); para = []; } };
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if ((m = line.match(/^\s*(```|~~~)\s*([\w+#.-]*)/))) {  // fenced code (an open fence runs to the end while streaming)
      flush();
      const fence = m[1], lang = m[2];
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence)) body.push(lines[i++]);
      i++;
      const pre = add(h("pre"));
      if (lang) pre.appendChild(h("span", "lang", lang));
      const copy = pre.appendChild(h("button", "copy", "copy"));
      copy.type = "button";
      pre.appendChild(h("code", "", body.join("\n")));
      continue;
    }
    if (!line.trim()) { flush(); i++; continue; }
    if ((m = line.match(/^(#{1,6})\s+(.*)$/))) { flush(); inline(m[2], add(h("h" + m[1].length))); i++; continue; }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) { flush(); add(h("hr")); i++; continue; }
    if (depth < MAX_DEPTH && /^\s*>/.test(line)) {
      flush();
      const q = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) q.push(lines[i++].replace(/^\s*>\s?/, ""));
      add(h("blockquote")).appendChild(renderMarkdown(q.join("\n"), depth + 1));
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/.test(lines[i + 1])) {
      flush();
      const table = add(h("table"));
      const hr = table.appendChild(h("thead")).appendChild(h("tr"));
      for (const c of splitRow(line)) inline(c, hr.appendChild(h("th")));
      const tbody = table.appendChild(h("tbody"));
      i += 2;
      while (i < lines.length && lines[i].includes("|") && lines[i].trim()) {
        const tr = tbody.appendChild(h("tr"));
        for (const c of splitRow(lines[i++])) inline(c, tr.appendChild(h("td")));
      }
      continue;
    }
    if ((m = line.match(/^(\s*)([-*+]|\d+[.)])\s+/))) {
      flush();
      const ordered = /\d/.test(m[2]);
      const items = [];
      while (i < lines.length) {
        const l = lines[i];
        const mm = l.match(/^(\s*)([-*+]|\d+[.)])\s+(.*)$/);
        if (mm && /\d/.test(mm[2]) === ordered && mm[1].length < 2) { items.push(mm[3]); i++; continue; }
        if (l.trim() && /^\s{2,}/.test(l) && items.length) { items[items.length - 1] += "\n" + l.trim(); i++; continue; }
        break;
      }
      const list = add(h(ordered ? "ol" : "ul"));
      for (const t of items) inline(t, list.appendChild(h("li")));
      continue;
    }
    para.push(line);
    i++;
  }
  flush();
  return frag;
}

// ---- rendering ----------------------------------------------------------------------------
function renderConvList() {
  const list = $("conv-list");
  list.replaceChildren();
  for (const c of [...convs].sort((a, b) => b.updated - a.updated)) {
    const d = h("div", "conv" + (c.id === currentId ? " active" : ""));
    d.appendChild(h("span", "title", c.title || "New chat"));
    const del = d.appendChild(h("button", "del", "\u2715"));
    del.type = "button";
    del.title = "Delete";
    d.addEventListener("click", (e) => {
      if (e.target === del) {
        convs = convs.filter((x) => x !== c);
        if (currentId === c.id) currentId = null;
        persist(); renderAll(); return;
      }
      if (controller) return;
      currentId = c.id; persist(); renderAll();
    });
    list.appendChild(d);
  }
}
function statsText(s) {
  if (!s || typeof s !== "object") return "";
  const parts = [(+s.tokens || 0) + " tokens"];
  if (s.tps) parts.push((+s.tps).toFixed(1) + " tokens/s");
  if (s.ttft != null) parts.push("first token " + Math.round(s.ttft) + " ms");
  if (s.finish && s.finish !== "stop") parts.push(s.finish === "length" ? "stopped: length limit" : str(s.finish));
  return parts.join(" \u00b7 ");
}
function messageEl(msg, idx) {
  const role = msg.role === "user" ? "user" : "assistant";
  const d = h("div", "msg " + role);
  d.dataset.index = idx;
  d.append(h("div", "avatar", role === "user" ? "You" : "AI"), h("div", "body"));
  fillMessage(d, msg, false);
  return d;
}
// (Re)draws a message; the streaming path calls this for every update of the answer.
function fillMessage(d, msg, streaming) {
  const body = d.querySelector(".body");
  if (msg.role === "user") {
    body.replaceChildren(h("div", "content", str(msg.content)));
    return;
  }
  const old = body.querySelector("details.reasoning");
  const wasOpen = old ? old.open : streaming;
  const parts = [];
  if (msg.reasoning) {
    const det = h("details", "reasoning");
    det.open = wasOpen;
    const secs = +msg.thinkSeconds;
    det.appendChild(h("summary", "", streaming && !msg.content ? "Thinking\u2026" : "Thought" + (secs ? " for " + secs.toFixed(1) + " s" : "")));
    det.appendChild(h("div", "rcontent")).appendChild(renderMarkdown(msg.reasoning));
    parts.push(det);
  }
  const content = h("div", "content" + (streaming ? " cursor" : ""));
  content.appendChild(renderMarkdown(msg.content || ""));
  parts.push(content);
  if (msg.error) parts.push(h("div", "error", str(msg.error)));
  const meta = h("div", "meta");
  meta.appendChild(h("span", "stats", statsText(msg.stats)));
  if (!streaming) {
    const copy = meta.appendChild(h("button", "copy-msg", "Copy"));
    const regen = meta.appendChild(h("button", "regen", "Regenerate"));
    copy.type = regen.type = "button";
  }
  parts.push(meta);
  body.replaceChildren(...parts);
  d.dataset.done = streaming ? "0" : "1";
}
function renderMessages() {
  const c = current();
  messagesEl.replaceChildren();
  if (!c || !c.messages.length) {
    const empty = h("div");
    empty.id = "empty";
    const p = h("p");
    p.append("Answers are generated locally by ", h("b", "", modelId || "the model"), ". Conversations stay in this browser.");
    empty.append(h("h1", "", "How can I help?"), p);
    messagesEl.appendChild(empty);
    return;
  }
  c.messages.forEach((m, i) => messagesEl.appendChild(messageEl(m, i)));
  messagesEl.scrollTop = messagesEl.scrollHeight;
}
function renderAll() { renderConvList(); renderMessages(); }

messagesEl.addEventListener("click", (e) => {
  const t = e.target;
  if (t.classList.contains("copy")) {
    const code = t.parentElement.querySelector("code");
    navigator.clipboard && navigator.clipboard.writeText(code.textContent);
    t.textContent = "copied"; setTimeout(() => (t.textContent = "copy"), 1200);
  } else if (t.classList.contains("copy-msg")) {
    const i = +t.closest(".msg").dataset.index;
    navigator.clipboard && navigator.clipboard.writeText(current().messages[i].content || "");
  } else if (t.classList.contains("regen")) {
    if (controller) return;
    const c = current();
    const i = +t.closest(".msg").dataset.index;
    c.messages = c.messages.slice(0, i);
    persist(); renderMessages(); generate();
  }
});

// ---- talking to the server ----------------------------------------------------------------
function headers() {
  const h = { "Content-Type": "application/json" };
  if (apiKey) h["Authorization"] = "Bearer " + apiKey;
  return h;
}
async function fetchModel() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    const j = await r.json();
    if (j.data && j.data.length) { modelId = str(j.data[0].id); $("model-name").textContent = modelId; }
    else if (j.error) $("model-name").textContent = "(" + str(j.error.message) + ")";
  } catch (e) { $("model-name").textContent = "(server unreachable)"; }
  if (!current() || !current().messages.length) renderMessages();
}
function setBusy(b) { document.body.classList.toggle("busy", b); $("status").textContent = b ? "generating\u2026" : ""; }

async function generate() {
  const c = current();
  const history = [];
  if (settings.system.trim()) history.push({ role: "system", content: settings.system });
  for (const m of c.messages) history.push({ role: m.role, content: m.content || "" });
  const msg = { role: "assistant", content: "", reasoning: "" };
  c.messages.push(msg);
  c.updated = Date.now();
  persist();
  const el = messageEl(msg, c.messages.length - 1);
  const empty = $("empty"); if (empty) empty.remove();
  messagesEl.appendChild(el);
  fillMessage(el, msg, true);
  messagesEl.scrollTop = messagesEl.scrollHeight;

  const body = { model: modelId || "default", messages: history, stream: true, stream_options: { include_usage: true } };
  const temp = parseFloat(settings.temperature);
  if (!isNaN(temp)) body.temperature = temp;
  const mt = parseInt(settings.max_tokens, 10);
  if (mt > 0) body.max_tokens = mt;

  controller = new AbortController();
  setBusy(true);
  const t0 = performance.now();
  let tFirst = null, tReasonEnd = null, nChunks = 0, usage = null, finish = null;
  let pending = false, ended = false;
  const redraw = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      if (ended) return;  // the final rendering has been done
      const atBottom = messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 80;
      const el2 = messagesEl.querySelector('.msg[data-index="' + (c.messages.indexOf(msg)) + '"]') || el;
      const secs = tFirst ? (performance.now() - tFirst) / 1000 : 0;
      msg.stats = { tokens: nChunks, tps: secs > 0.2 ? nChunks / secs : 0, ttft: tFirst ? tFirst - t0 : null };
      if (msg.reasoning && tReasonEnd == null && msg.content) tReasonEnd = performance.now();
      fillMessage(el2, msg, controller != null);
      if (atBottom) messagesEl.scrollTop = messagesEl.scrollHeight;
    });
  };
  try {
    const r = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal });
    if (!r.ok) {
      let text = r.status + " " + r.statusText;
      try { const j = await r.json(); if (j.error) text = str(j.error.message); } catch (e) {}
      throw new Error(text);
    }
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let k;
      while ((k = buf.indexOf("\n\n")) >= 0) {
        const ev = buf.slice(0, k);
        buf = buf.slice(k + 2);
        for (const line of ev.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") continue;
          let j;
          try { j = JSON.parse(data); } catch (e) { continue; }
          if (!j || typeof j !== "object") continue;
          if (j.error) throw new Error(str(j.error.message));
          if (j.usage) usage = j.usage;
          const ch = j.choices && j.choices[0];
          if (!ch) continue;
          const d = ch.delta || {};
          if (d.reasoning_content || d.content) {
            if (tFirst == null) tFirst = performance.now();
            nChunks++;
            if (d.reasoning_content) msg.reasoning += str(d.reasoning_content);
            if (d.content) msg.content += str(d.content);
            redraw();
          }
          if (ch.finish_reason) finish = str(ch.finish_reason);
        }
      }
    }
  } catch (e) {
    if (e.name === "AbortError") finish = "stopped";
    else msg.error = "Error: " + e.message;
  }
  controller = null;
  ended = true;
  const tEnd = performance.now();
  const tokens = usage ? +usage.completion_tokens || 0 : nChunks;
  const genSecs = tFirst ? (tEnd - tFirst) / 1000 : 0;
  msg.stats = { tokens: tokens, tps: genSecs > 0 && tokens > 1 ? (tokens - 1) / genSecs : 0, ttft: tFirst ? tFirst - t0 : null, finish: finish };
  if (msg.reasoning) msg.thinkSeconds = ((tReasonEnd || tEnd) - (tFirst || t0)) / 1000;
  c.updated = Date.now();
  persist();
  setBusy(false);
  const el3 = messagesEl.querySelector('.msg[data-index="' + c.messages.indexOf(msg) + '"]');
  if (el3) fillMessage(el3, msg, false);
  renderConvList();
  input.focus();
}

function send(text) {
  if (!text.trim() || controller) return;
  let c = current();
  if (!c) {
    c = { id: newId(), title: "", messages: [], updated: Date.now() };
    convs.push(c);
    currentId = c.id;
  }
  if (!c.title) c.title = text.trim().slice(0, 48);
  c.messages.push({ role: "user", content: text });
  c.updated = Date.now();
  persist();
  renderAll();
  generate();
}

// ---- wiring -------------------------------------------------------------------------------
$("form").addEventListener("submit", (e) => { e.preventDefault(); const t = input.value; input.value = ""; autosize(); send(t); });
input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("form").requestSubmit(); }
});
function autosize() { input.style.height = "auto"; input.style.height = Math.min(input.scrollHeight, 200) + "px"; }
input.addEventListener("input", autosize);
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
$("new-chat").addEventListener("click", () => { if (controller) return; currentId = null; persist(); renderAll(); input.focus(); });
$("open-settings").addEventListener("click", () => {
  $("set-system").value = settings.system; $("set-temp").value = settings.temperature;
  $("set-maxtok").value = settings.max_tokens; $("set-key").value = apiKey;
  $("set-remember").checked = rememberKey;
  $("settings").classList.add("open");
});
$("close-settings").addEventListener("click", () => {
  settings = { system: $("set-system").value, temperature: $("set-temp").value, max_tokens: $("set-maxtok").value };
  apiKey = $("set-key").value;
  rememberKey = $("set-remember").checked;
  saveSettings();
  $("settings").classList.remove("open");
  fetchModel();
});
$("settings").addEventListener("click", (e) => { if (e.target.id === "settings") $("close-settings").click(); });
// A conversation left with a half-written answer (page closed mid-stream) keeps what it had.
renderAll();
fetchModel();
input.focus();
)YITIJS";

}  // namespace

const std::string& webui_html() {
    static const std::string s = k_html;
    return s;
}

const std::string& webui_script() {
    static const std::string s = k_js;
    return s;
}

const std::string& webui_style() {
    static const std::string s = k_css;
    return s;
}

// Only this server's own script, styles and API; no inline script or style, no eval, no plugins,
// no frames, no <base>, no form submissions, not framable. Trusted Types: Chromium refuses every
// string assigned to an HTML or script sink (innerHTML, outerHTML, insertAdjacentHTML,
// document.write, eval ...), so such a sink cannot creep back in unnoticed.
const char* webui_csp() {
    return "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'; "
           "require-trusted-types-for 'script'; trusted-types 'none'";
}

}  // namespace yiti::server
