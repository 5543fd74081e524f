"""The rater page: ``GET /labels/rate?task=T&rater=R``, keyboard-driven and tolerant of a dropped network.

The page is static (no data in it): it reads the task's classes and guideline and the rater's next items
from ``/api/labels`` and sends answers to ``POST /api/labels/tasks/{task}/answers`` with the bearer token
the rater types once (kept in the tab's ``sessionStorage``, never in the URL). Keys ``1``–``9`` answer
with the n-th class, ``g`` shows the guideline. It works offline once loaded: items are fetched 50 ahead
and kept in ``localStorage`` with the classes, and answers go to an outbox in ``localStorage`` that is
sent when the network is back (``online`` event, and after every answer); a refused answer (already
answered, item gone) is dropped from the outbox with its reason shown, never retried forever. Text from
the server is only ever set with ``textContent``, so a query cannot inject markup. Every asset is in the
page itself, and its Content-Security-Policy lets it reach only the server it came from. A service worker
(``/labels/rate-sw.js``) keeps the last copy of the page, so a rater can also *open* it with no network:
it fetches the page from the server first and answers from its copy only when that fails.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

router = APIRouter(tags=["labels"])

# Everything the page needs is in it (inline style and script, no font, image or library from anywhere): it
# talks only to the server that served it. The policy makes the browser hold the page to that, so a rater on
# a closed network (or a page changed later) never waits on, or leaks to, another host.
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
       "img-src 'self'; worker-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

# The page's service worker: network first (a new page reaches raters as soon as the server is back), its
# cached copy when the network fails. Only GET /labels/rate goes through it; the API is never cached.
SERVICE_WORKER = """"use strict";
const CACHE = "yarnit-rater-page-v1", PAGE = "/labels/rate";
self.addEventListener("install", (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.add(PAGE)).then(() => self.skipWaiting()));
});
self.addEventListener("activate", (e) => e.waitUntil(self.clients.claim()));
self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== self.location.origin || url.pathname !== PAGE) return;
  e.respondWith(fetch(e.request).then((r) => {
    if (r.ok) { const copy = r.clone(); caches.open(CACHE).then((c) => c.put(PAGE, copy)); }
    return r;
  }).catch(() => caches.match(PAGE).then((r) => r || Response.error())));
});
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>yarnit · label</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#222}
#text{font-size:1.8rem;margin:1.5rem 0;padding:1rem;border:1px solid #ccc;border-radius:6px;min-height:2.2rem}
#classes button{margin:.2rem;padding:.5rem .8rem;font-size:1rem}
#prelabel{color:#666} #status{color:#555;margin-top:1rem} #error{color:#a00}
#guideline{white-space:pre-wrap;background:#f6f6f6;padding:.8rem;display:none}
</style></head>
<body>
<h1>Label <span id="task"></span> as <span id="rater"></span></h1>
<form id="login"><label>Token <input id="token" type="password" autocomplete="off"></label>
<button type="submit">Start</button></form>
<div id="work" hidden>
<div id="text" aria-live="polite"></div><div id="prelabel"></div>
<div id="classes"></div>
<p>Keys: <b>1</b>–<b>9</b> choose a class, <b>g</b> shows the guideline.</p>
<div id="guideline"></div>
</div>
<div id="status"></div><div id="error"></div>
<script>
"use strict";
const q = new URLSearchParams(location.search);
const task = q.get("task") || "", rater = q.get("rater") || "";
const KEY = (what) => `yarnit:${what}:${task}:${rater}`;
const api = `/api/labels/tasks/${encodeURIComponent(task)}`;
const load = (what, fallback) => { try { return JSON.parse(localStorage.getItem(KEY(what))) ?? fallback; }
                                   catch (e) { return fallback; } };
const save = (what, value) => localStorage.setItem(KEY(what), JSON.stringify(value));
let schema = load("schema", null), queue = load("queue", []), outbox = load("outbox", []), sent = 0;
let sending = false;
const $ = (id) => document.getElementById(id);
$("task").textContent = task; $("rater").textContent = rater;

function status(text) { $("status").textContent = text; }
function error(text) { $("error").textContent = text; }

function render() {
  if (!schema) { status("Loading the task…"); return; }
  const buttons = $("classes"); buttons.replaceChildren();
  schema.classes.forEach((c, i) => {
    const b = document.createElement("button"); b.type = "button"; b.textContent = `${i + 1} ${c}`;
    b.addEventListener("click", () => answer(i)); buttons.appendChild(b);
  });
  $("guideline").textContent = schema.guideline;
  const item = queue[0];
  $("text").textContent = item ? item.text : "Nothing left to label. Thank you!";
  $("text").dataset.key = item ? item.item_key : "";
  $("prelabel").textContent = item && item.prelabel ? `model suggests: ${item.prelabel}` : "";
  const waiting = outbox.length ? `${outbox.length} answer(s) waiting to be sent` : "all answers sent";
  status(`${navigator.onLine ? "online" : "offline"} · ${waiting} · ${sent} sent this session`);
}

async function call(path, options) {
  const headers = {"Authorization": `Bearer ${sessionStorage.getItem("yarnit-token") || ""}`,
                   "Content-Type": "application/json"};
  return fetch(path, {...options, headers});
}

async function loadSchema() {
  try {
    const r = await call(api, {method: "GET"});
    if (r.ok) { const t = await r.json(); schema = {classes: t.classes, guideline: t.guideline}; save("schema", schema); }
    else { error(`The task could not be loaded (${r.status}): ${(await r.json()).detail}`); }
  } catch (e) { /* offline: keep the cached schema */ }
}

async function refill() {
  if (queue.length >= 5) return;
  try {
    const r = await call(`${api}/next?rater=${encodeURIComponent(rater)}&limit=50`, {method: "GET"});
    if (!r.ok) { error(`Items could not be loaded (${r.status}).`); return; }
    const held = new Set([...queue, ...outbox].map((x) => x.item_key));
    for (const item of (await r.json()).items) if (!held.has(item.item_key)) queue.push(item);
    save("queue", queue);
  } catch (e) { /* offline: work from the cached queue */ }
}

async function send(batch) {
  return call(`${api}/answers`, {method: "POST", body: JSON.stringify({rater, answers: batch})});
}

async function flush() {
  if (sending || !outbox.length) { render(); return; }
  sending = true;
  try {
    const batch = outbox.slice(0, 100);
    let r = await send(batch);
    if (r.ok) { outbox = outbox.slice(batch.length); sent += batch.length; }
    else if (r.status === 401) { error("The token was refused: enter a valid one and press Start."); }
    else if (r.status >= 400 && r.status < 500) {
      // all or none was refused: send one by one, drop the ones refused with their reason shown
      const keep = [];
      for (const a of batch) {
        r = await send([a]);
        if (r.ok) sent += 1;
        else if (r.status >= 500) keep.push(a);
        else error(`Answer for ${a.item_key} refused: ${(await r.json()).detail}`);
      }
      outbox = keep.concat(outbox.slice(batch.length));
    }
  } catch (e) { /* offline: keep the outbox for later */ }
  finally { sending = false; save("outbox", outbox); render(); }
  if (outbox.length && navigator.onLine) setTimeout(flush, 2000);
}

function answer(i) {
  const item = queue[0];
  if (!item || !schema || i >= schema.classes.length) return;
  queue.shift(); save("queue", queue);
  outbox.push({item_key: item.item_key, label: schema.classes[i]}); save("outbox", outbox);
  render(); flush(); refill().then(render);
}

document.addEventListener("keydown", (e) => {
  if ($("work").hidden || e.target.tagName === "INPUT") return;
  if (e.key >= "1" && e.key <= "9") { e.preventDefault(); answer(Number(e.key) - 1); }
  else if (e.key === "g") { const g = $("guideline"); g.style.display = g.style.display === "block" ? "none" : "block"; }
});
window.addEventListener("online", () => { flush(); refill().then(render); });
window.addEventListener("offline", render);
setInterval(() => { if (outbox.length) flush(); }, 3000);  // also when no "online" event comes

async function start() {
  $("login").hidden = true; $("work").hidden = false; error("");
  await loadSchema(); await refill(); render(); flush();
}
$("login").addEventListener("submit", (e) => {
  e.preventDefault(); sessionStorage.setItem("yarnit-token", $("token").value); start();
});
if (sessionStorage.getItem("yarnit-token")) start();
if ("serviceWorker" in navigator) navigator.serviceWorker.register("/labels/rate-sw.js").catch(() => {});
</script>
</body></html>
"""


@router.get("/labels/rate", response_class=HTMLResponse)
def rater_page() -> HTMLResponse:
    """The rater page (static; it reads and writes through /api/labels with the rater's token)."""
    return HTMLResponse(PAGE, headers={"Cache-Control": "no-store", "Content-Security-Policy": CSP})


@router.get("/labels/rate-sw.js", include_in_schema=False)
def rater_page_worker() -> Response:
    """The rater page's service worker: it lets a rater open the page with no network (see the module)."""
    return Response(SERVICE_WORKER, media_type="text/javascript",
                    headers={"Cache-Control": "no-cache", "Content-Security-Policy": "default-src 'self'"})
