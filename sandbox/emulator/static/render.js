// Telegram text + entities -> DOM, using only createElement/append/textContent-style APIs.
// Shared by the chat page and the node test (tests/emulator/test_page.py); strings are only ever
// appended as text nodes, so message text can never become markup.
"use strict";

(function (root) {
  let document = root.document;

  function safeUrl(url) {
    try {
      const base = root.location ? root.location.href : "http://localhost/";
      const parsed = new URL(url, base);
      return ["http:", "https:", "tg:", "mailto:"].includes(parsed.protocol) ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }

  const TAGS = {
    bold: "b", italic: "i", underline: "u", strikethrough: "s", spoiler: "span",
    code: "code", pre: "pre", blockquote: "blockquote", expandable_blockquote: "blockquote",
  };

  function entityElement(entity, covered) {
    if (entity.type === "text_link" || entity.type === "url") {
      // a "url" entity links its own text; a "text_link" carries the URL separately
      const href = safeUrl(entity.type === "url" ? covered : entity.url || "");
      if (href) {
        const a = document.createElement("a");
        a.href = href;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        return a;
      }
      return document.createElement("span");
    }
    const el = document.createElement(TAGS[entity.type] || "span");
    if (entity.type === "spoiler") {
      el.className = "spoiler";
      el.addEventListener("click", () => el.classList.add("revealed"));
    } else if (entity.type !== "bold" && !TAGS[entity.type]) {
      el.className = "ent-" + String(entity.type).replace(/[^a-z_]/g, "");
    }
    return el;
  }

  // Entities are UTF-16 offsets, which is exactly how JS strings index.
  function renderEntities(parent, text, entities, start, end) {
    const list = entities
      .filter((e) => e.offset >= start && e.offset < end)
      .sort((a, b) => a.offset - b.offset || b.length - a.length);
    let pos = start;
    let i = 0;
    while (i < list.length) {
      const e = list[i];
      const eEnd = Math.min(e.offset + e.length, end);
      if (e.offset < pos) { i++; continue; }   // overlapping, not nested: skip it
      if (e.offset > pos) parent.append(text.slice(pos, e.offset));
      const inner = [];
      let j = i + 1;
      while (j < list.length && list[j].offset < eEnd) { inner.push(list[j]); j++; }
      const el = entityElement(e, text.slice(e.offset, eEnd));
      renderEntities(el, text, inner, e.offset, eEnd);
      parent.append(el);
      pos = eEnd;
      i = j;
    }
    if (pos < end) parent.append(text.slice(pos, end));
  }

  function formatted(text, entities) {
    const div = document.createElement("div");
    div.className = "text";
    renderEntities(div, text, entities || [], 0, text.length);
    return div;
  }

  const api = {safeUrl, renderEntities, formatted, use(doc) { document = doc; }};
  root.TgRender = api;
  if (typeof module !== "undefined" && module.exports) module.exports = api;
})(typeof window !== "undefined" ? window : globalThis);
