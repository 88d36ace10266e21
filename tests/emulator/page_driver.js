// Drives the real sandbox page scripts (render.js + chat.js) under node with a tiny DOM stub,
// against a live emulator: argv[2] = emulator URL, argv[3] = static dir, stdin = personas JSON.
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

const [base, staticDir] = process.argv.slice(2);
const personasJson = fs.readFileSync(0, "utf8");

class Text {
  constructor(data) { this.data = data; this.parent = null; }
  get textContent() { return this.data; }
}
class El {
  constructor(tag) {
    this.tagName = tag.toUpperCase(); this.children = []; this.listeners = {}; this.attrs = {};
    this.dataset = {}; this.hidden = false; this.value = ""; this.disabled = false;
    this.parent = null; this.scrollHeight = 0; this.scrollTop = 0; this.clientHeight = 0;
    this.classList = {add: (c) => { this.attrs.class = `${this.attrs.class || ""} ${c}`.trim(); }};
  }
  append(...xs) {
    for (const x of xs) {
      const node = typeof x === "string" ? new Text(x) : x;
      node.parent = this;
      this.children.push(node);
    }
  }
  replaceChildren(...xs) { this.children = []; this.append(...xs); }
  replaceWith(other) {
    const siblings = this.parent.children;
    other.parent = this.parent;
    siblings[siblings.indexOf(this)] = other;
  }
  remove() { if (this.parent) this.parent.children.splice(this.parent.children.indexOf(this), 1); }
  addEventListener(type, fn) { (this.listeners[type] = this.listeners[type] || []).push(fn); }
  dispatch(type) {
    for (const fn of this.listeners[type] || []) fn({preventDefault() {}, target: this});
  }
  closest() {
    for (let n = this; n; n = n.parent) if (n.tagName === "A" || n.tagName === "BUTTON") return n;
    return null;
  }
  scrollIntoView() {}
  get textContent() { return this.children.map((c) => c.textContent).join(""); }
  set textContent(v) { this.replaceChildren(String(v)); }
  set className(v) { this.attrs.class = v; }
  get className() { return this.attrs.class || ""; }
  set href(v) { this.attrs.href = v; }
  set target(v) { this.attrs.target = v; }
  set rel(v) { this.attrs.rel = v; }
  set src(v) { this.attrs.src = v; }
  set type(v) { this.attrs.type = v; }
}
const esc = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const html = (n) => n instanceof Text ? esc(n.data) : `<${n.tagName.toLowerCase()}>` +
  n.children.map(html).join("") + `</${n.tagName.toLowerCase()}>`;

const byId = {};
const document = {
  getElementById(id) {
    if (!byId[id]) byId[id] = new El(id === "personas-data" ? "script" : "div");
    return byId[id];
  },
  createElement: (tag) => new El(tag),
};
document.getElementById("personas-data").textContent = personasJson;
document.getElementById("persona").value = JSON.parse(personasJson)[0].key;
const alerts = [];
const realFetch = globalThis.fetch;
Object.assign(globalThis, {
  document,
  window: globalThis,
  location: {href: base + "/"},
  history: {replaceState() {}},
  alert: (text) => alerts.push(text),
  Option: class extends El {
    constructor(text, value) { super("option"); this.textContent = text; this.value = value; }
  },
  fetch: (url, opts) => realFetch(new URL(url, base), opts),
});
for (const name of ["render.js", "chat.js"]) {
  vm.runInThisContext(fs.readFileSync(path.join(staticDir, name), "utf8"), {filename: name});
}

const messages = document.getElementById("messages");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(check, what) {
  for (let i = 0; i < 100; i++) {
    const found = check();
    if (found) return found;
    await sleep(50);
  }
  throw new Error("timed out waiting for " + what + "; page shows: " + messages.textContent);
}
function find(node, pred) {
  if (node instanceof Text) return null;
  if (pred(node)) return node;
  for (const child of node.children) {
    const hit = find(child, pred);
    if (hit) return hit;
  }
  return null;
}

(async () => {
  await sleep(200);  // chats + history load, poll starts
  document.getElementById("text").value = "hi <script>alert(1)</script>";
  document.getElementById("composer").dispatch("submit");
  await waitFor(() => messages.children.length >= 2, "the bot's reply");
  const button = await waitFor(
    () => find(messages, (n) => n.tagName === "BUTTON" && n.textContent === "Pick"), "button");
  button.dispatch("click");
  await waitFor(() => messages.textContent.includes("Chose pick"), "the edit");
  await waitFor(() => !document.getElementById("toast").hidden, "the toast");
  const chat = {
    bubbles: messages.children.map((m) => m.textContent),
    html: messages.children.map(html),
    ids: messages.children.map((m) => m.dataset.id),
    toast: document.getElementById("toast").textContent,
    alerts,
  };
  // The reply bar: hidden until a bubble is clicked, hidden again by × and by sending.
  const bar = document.getElementById("reply-bar");
  const replyStates = [bar.hidden];
  const bubbleOf = (i) => find(messages.children[i], (n) => n.className === "bubble");
  bubbleOf(1).dispatch("click");
  replyStates.push(bar.hidden, document.getElementById("reply-text").textContent);
  document.getElementById("reply-cancel").dispatch("click");
  replyStates.push(bar.hidden);
  bubbleOf(1).dispatch("click");
  replyStates.push(bar.hidden);
  document.getElementById("text").value = "about that";
  document.getElementById("composer").dispatch("submit");
  await waitFor(() => messages.children.length >= 4, "the reply's echo");
  replyStates.push(bar.hidden);
  console.log(JSON.stringify({...chat, replyStates}));
  process.exit(0);
})().catch((err) => { console.error(err.stack || String(err)); process.exit(1); });
