// The web chat page. Everything is inline: no CDN, no external files, works offline.
// Conversations live in the browser's localStorage; answers stream from /v1/chat/completions.
#include "server/webui.h"

namespace yiti::server {

namespace {

const char* const k_head = R"YITIHTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>yiti chat</title>
<style>
:root {
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
#settings label { display: block; font-size: 13px; margin: 10px 0 4px; color: var(--muted); }
#settings input, #settings textarea { width: 100%; padding: 7px 9px; border: 1px solid var(--border); border-radius: 6px;
                                      background: var(--bg); color: var(--fg); font: inherit; }
#settings .row { display: flex; gap: 10px; }
#settings .row > div { flex: 1; }
#settings .buttons { margin-top: 16px; text-align: right; }
#settings .buttons button { border: none; border-radius: 6px; padding: 7px 14px; cursor: pointer; background: var(--accent);
                            color: #fff; }
@media (max-width: 700px) { #sidebar { display: none; } }
</style>
</head>
)YITIHTML";

const char* const k_body = R"YITIHTML(<body>
<aside id="sidebar">
  <header><span class="logo"></span>yiti</header>
  <button id="new-chat">+ New chat</button>
  <div id="conv-list"></div>
  <div id="side-foot"><button id="open-settings">&#9881; Settings</button></div>
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
    <h3 style="margin:0 0 6px">Settings</h3>
    <label for="set-system">System prompt</label>
    <textarea id="set-system" rows="3"></textarea>
    <div class="row">
      <div><label for="set-temp">Temperature</label><input id="set-temp" type="number" min="0" max="2" step="0.1"></div>
      <div><label for="set-maxtok">Max tokens (empty: no limit)</label><input id="set-maxtok" type="number" min="1"></div>
    </div>
    <label for="set-key">API key (if the server needs one)</label>
    <input id="set-key" type="password" autocomplete="off">
    <div class="buttons"><button id="close-settings">Done</button></div>
  </div>
</div>
)YITIHTML";

const char* const k_script = R"YITIHTML(<script>
"use strict";
// ---- storage ------------------------------------------------------------------------------
const LS_CONVS = "yiti.conversations", LS_SETTINGS = "yiti.settings", LS_CURRENT = "yiti.current";
function load(key, def) { try { const v = JSON.parse(localStorage.getItem(key)); return v == null ? def : v; } catch (e) { return def; } }
function save(key, v) { try { localStorage.setItem(key, JSON.stringify(v)); } catch (e) { /* quota: keep going */ } }
let convs = load(LS_CONVS, []);
let settings = Object.assign({ system: "", temperature: 0.7, max_tokens: "", api_key: "" }, load(LS_SETTINGS, {}));
let currentId = load(LS_CURRENT, null);
let modelId = null;
let controller = null;

const $ = (id) => document.getElementById(id);
const messagesEl = $("messages"), input = $("input");

function newId() { return Date.now().toString(36) + Math.random().toString(36).slice(2, 8); }
function current() { return convs.find((c) => c.id === currentId) || null; }
function persist() { save(LS_CONVS, convs); save(LS_CURRENT, currentId); }

// ---- markdown -----------------------------------------------------------------------------
function esc(s) { return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;"); }
function safeUrl(u) {
  const t = u.trim();
  if (/^(https?:|mailto:)/i.test(t) || /^[\/#.]/.test(t)) return t;
  return "#";
}
// Inline markup on already-escaped text; code spans are cut out first so nothing inside them changes.
function inline(s) {
  const codes = [];
  s = s.replace(/`([^`\n]+)`/g, (m, c) => { codes.push(c); return "\u0000" + (codes.length - 1) + "\u0000"; });
  s = s.replace(/!\[([^\]]*)\]\(([^)\s]+)\)/g, (m, alt, url) => '<a href="' + safeUrl(url) + '" target="_blank" rel="noopener">' + alt + "</a>");
  s = s.replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, (m, t, url) => '<a href="' + safeUrl(url) + '" target="_blank" rel="noopener">' + t + "</a>");
  s = s.replace(/(^|[\s(])(https?:\/\/[^\s<)]+)/g, (m, pre, url) => pre + '<a href="' + url + '" target="_blank" rel="noopener">' + url + "</a>");
  s = s.replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>").replace(/__([^_\n]+)__/g, "<strong>$1</strong>");
  s = s.replace(/(^|[^*\w])\*([^*\n]+)\*(?!\w)/g, "$1<em>$2</em>").replace(/(^|[^_\w])_([^_\n]+)_(?!\w)/g, "$1<em>$2</em>");
  s = s.replace(/~~([^~\n]+)~~/g, "<del>$1</del>");
  return s.replace(/\u0000(\d+)\u0000/g, (m, i) => "<code>" + codes[+i] + "</code>");
}
function splitRow(line) {
  let t = line.trim();
  if (t.startsWith("|")) t = t.slice(1);
  if (t.endsWith("|")) t = t.slice(0, -1);
  return t.split("|").map((c) => c.trim());
}
function renderMarkdown(src) {
  const lines = src.replace(/\r\n?/g, "\n").split("\n");
  const out = [];
  let i = 0, para = [];
  const flush = () => { if (para.length) { out.push("<p>" + inline(esc(para.join("\n"))).replace(/\n/g, "<br>") + "</p>"); para = []; } };
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
      out.push('<pre>' + (lang ? '<span class="lang">' + esc(lang) + "</span>" : "") + '<button class="copy" type="button">copy</button><code>' +
               esc(body.join("\n")) + "</code></pre>");
      continue;
    }
    if (!line.trim()) { flush(); i++; continue; }
    if ((m = line.match(/^(#{1,6})\s+(.*)$/))) { flush(); out.push("<h" + m[1].length + ">" + inline(esc(m[2])) + "</h" + m[1].length + ">"); i++; continue; }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) { flush(); out.push("<hr>"); i++; continue; }
    if (/^\s*>/.test(line)) {
      flush();
      const q = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) q.push(lines[i++].replace(/^\s*>\s?/, ""));
      out.push("<blockquote>" + renderMarkdown(q.join("\n")) + "</blockquote>");
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/.test(lines[i + 1])) {
      flush();
      const head = splitRow(line);
      i += 2;
      let h = "<table><thead><tr>" + head.map((c) => "<th>" + inline(esc(c)) + "</th>").join("") + "</tr></thead><tbody>";
      while (i < lines.length && lines[i].includes("|") && lines[i].trim()) {
        h += "<tr>" + splitRow(lines[i++]).map((c) => "<td>" + inline(esc(c)) + "</td>").join("") + "</tr>";
      }
      out.push(h + "</tbody></table>");
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
      const tag = ordered ? "ol" : "ul";
      out.push("<" + tag + ">" + items.map((t) => "<li>" + inline(esc(t)).replace(/\n/g, "<br>") + "</li>").join("") + "</" + tag + ">");
      continue;
    }
    para.push(line);
    i++;
  }
  flush();
  return out.join("\n");
}

// ---- rendering ----------------------------------------------------------------------------
function renderConvList() {
  const list = $("conv-list");
  list.innerHTML = "";
  for (const c of [...convs].sort((a, b) => b.updated - a.updated)) {
    const d = document.createElement("div");
    d.className = "conv" + (c.id === currentId ? " active" : "");
    d.innerHTML = '<span class="title"></span><button class="del" title="Delete">&#x2715;</button>';
    d.querySelector(".title").textContent = c.title || "New chat";
    d.onclick = (e) => {
      if (e.target.classList.contains("del")) {
        convs = convs.filter((x) => x.id !== c.id);
        if (currentId === c.id) currentId = null;
        persist(); renderAll(); return;
      }
      if (controller) return;
      currentId = c.id; persist(); renderAll();
    };
    list.appendChild(d);
  }
}
function statsText(s) {
  if (!s) return "";
  const parts = [s.tokens + " tokens"];
  if (s.tps) parts.push(s.tps.toFixed(1) + " tokens/s");
  if (s.ttft != null) parts.push("first token " + Math.round(s.ttft) + " ms");
  if (s.finish && s.finish !== "stop") parts.push(s.finish === "length" ? "stopped: length limit" : s.finish);
  return parts.join(" \u00b7 ");
}
function messageEl(msg, idx) {
  const d = document.createElement("div");
  d.className = "msg " + msg.role;
  d.dataset.index = idx;
  d.innerHTML = '<div class="avatar">' + (msg.role === "user" ? "You" : "AI") + '</div><div class="body"></div>';
  fillMessage(d, msg, false);
  return d;
}
function fillMessage(d, msg, streaming) {
  const body = d.querySelector(".body");
  if (msg.role === "user") {
    body.innerHTML = '<div class="content"></div>';
    body.querySelector(".content").textContent = msg.content;
    return;
  }
  let details = body.querySelector("details.reasoning");
  const wasOpen = details ? details.open : streaming;
  let html = "";
  if (msg.reasoning) {
    const label = streaming && !msg.content ? "Thinking\u2026" : "Thought" + (msg.thinkSeconds ? " for " + msg.thinkSeconds.toFixed(1) + " s" : "");
    html += '<details class="reasoning"' + (wasOpen ? " open" : "") + "><summary>" + label + '</summary><div class="rcontent">' +
            renderMarkdown(msg.reasoning) + "</div></details>";
  }
  html += '<div class="content' + (streaming ? " cursor" : "") + '">' + renderMarkdown(msg.content || "") + "</div>";
  if (msg.error) html += '<div class="error"></div>';
  html += '<div class="meta"><span class="stats">' + esc(statsText(msg.stats)) + "</span>" +
          (!streaming ? '<button class="copy-msg" type="button">Copy</button><button class="regen" type="button">Regenerate</button>' : "") + "</div>";
  body.innerHTML = html;
  if (msg.error) body.querySelector(".error").textContent = msg.error;
  d.dataset.done = streaming ? "0" : "1";
}
function renderMessages() {
  const c = current();
  messagesEl.innerHTML = "";
  if (!c || !c.messages.length) {
    messagesEl.innerHTML = '<div id="empty"><h1>How can I help?</h1><p>Answers are generated locally by <b>' +
                           esc(modelId || "the model") + "</b>. Conversations stay in this browser.</p></div>";
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
  if (settings.api_key) h["Authorization"] = "Bearer " + settings.api_key;
  return h;
}
async function fetchModel() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    const j = await r.json();
    if (j.data && j.data.length) { modelId = j.data[0].id; $("model-name").textContent = modelId; }
    else if (j.error) $("model-name").textContent = "(" + j.error.message + ")";
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
      try { const j = await r.json(); if (j.error) text = j.error.message; } catch (e) {}
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
          if (j.error) throw new Error(j.error.message);
          if (j.usage) usage = j.usage;
          const ch = j.choices && j.choices[0];
          if (!ch) continue;
          const d = ch.delta || {};
          if (d.reasoning_content || d.content) {
            if (tFirst == null) tFirst = performance.now();
            nChunks++;
            if (d.reasoning_content) msg.reasoning += d.reasoning_content;
            if (d.content) msg.content += d.content;
            redraw();
          }
          if (ch.finish_reason) finish = ch.finish_reason;
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
  const tokens = usage ? usage.completion_tokens : nChunks;
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
  $("set-maxtok").value = settings.max_tokens; $("set-key").value = settings.api_key;
  $("settings").classList.add("open");
});
$("close-settings").addEventListener("click", () => {
  settings = { system: $("set-system").value, temperature: $("set-temp").value, max_tokens: $("set-maxtok").value, api_key: $("set-key").value };
  save(LS_SETTINGS, settings);
  $("settings").classList.remove("open");
  fetchModel();
});
$("settings").addEventListener("click", (e) => { if (e.target.id === "settings") $("close-settings").click(); });
// A conversation left with a half-written answer (page closed mid-stream) keeps what it had.
renderAll();
fetchModel();
input.focus();
</script>
</body>
</html>
)YITIHTML";

}  // namespace

const std::string& webui_html() {
    static const std::string page = std::string(k_head) + k_body + k_script;
    return page;
}

}  // namespace yiti::server
