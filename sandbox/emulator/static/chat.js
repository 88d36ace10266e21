// Sandbox chat page: talks to the emulator's /_emulator control API only.
// Bot text is rendered from text + entities with DOM APIs (text nodes only, see render.js),
// so nothing a bot (or a user) writes can inject markup or script.
"use strict";

const personas = JSON.parse(document.getElementById("personas-data").textContent);
const els = {
  persona: document.getElementById("persona"),
  chat: document.getElementById("chat"),
  replyBar: document.getElementById("reply-bar"),
  replyText: document.getElementById("reply-text"),
  replyCancel: document.getElementById("reply-cancel"),
  messages: document.getElementById("messages"),
  form: document.getElementById("composer"),
  text: document.getElementById("text"),
  status: document.getElementById("status"),
  toast: document.getElementById("toast"),
  keyboard: document.getElementById("reply-keyboard"),
  reload: document.getElementById("reset-view"),
};
let current = null;  // {persona, chatId, isGroup, after, abort, nodes: Map<id, Element>, replyTo}
let typingTimer = null;

function personaUser(p) {
  const user = {id: p.user_id, first_name: p.first_name, language_code: p.language_code};
  if (p.username) user.username = p.username;
  return user;
}

async function api(method, path, body, signal) {
  const opts = {method, signal, headers: {}};
  if (method !== "GET") {
    // The emulator only accepts state changes as same-origin application/json (a type other
    // pages can't send without a CORS preflight), so every POST/DELETE carries a JSON body.
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body === undefined ? {} : body);
  }
  const resp = await fetch("/_emulator/" + path, opts);
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(data.error || resp.statusText);
  return data;
}

const {safeUrl, formatted} = window.TgRender;

function fileLink(fileId, label) {
  const a = document.createElement("a");
  a.href = "/_emulator/files/" + encodeURIComponent(fileId);
  a.textContent = label;
  a.className = "file";
  return a;
}

function inlineKeyboard(message) {
  const rows = (message.reply_markup || {}).inline_keyboard || [];
  const box = document.createElement("div");
  box.className = "inline-keyboard";
  for (const row of rows) {
    const line = document.createElement("div");
    line.className = "row";
    for (const button of row) {
      let el;
      if (button.url) {
        el = document.createElement("a");
        const href = safeUrl(button.url);
        if (href) { el.href = href; el.target = "_blank"; el.rel = "noopener noreferrer"; }
        el.textContent = button.text + " ↗";
      } else {
        el = document.createElement("button");
        el.type = "button";
        el.textContent = button.text;
        if (typeof button.callback_data === "string") {
          el.addEventListener("click", () => press(message, button.callback_data));
        } else {
          el.disabled = true;
          el.title = "not supported in the sandbox";
        }
      }
      el.classList.add("kb");
      line.append(el);
    }
    box.append(line);
  }
  return box;
}

function messageNode(message) {
  const mine = current && message.from && message.from.id === current.persona.user_id;
  const node = document.createElement("div");
  node.className = "msg " + (mine ? "out" : "in");
  node.dataset.id = message.message_id;
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  bubble.title = "Click to reply";
  bubble.addEventListener("click", (event) => {
    if (event.target.closest("a, button")) return;
    setReply(message);
  });
  if (current && current.isGroup && !mine && message.from) {
    const sender = document.createElement("div");
    sender.className = "sender";
    sender.textContent = message.from.first_name + (message.from.is_bot ? " (bot)" : "");
    bubble.append(sender);
  }
  if (message.reply_to_message) {
    const quote = document.createElement("div");
    quote.className = "reply";
    const r = message.reply_to_message;
    quote.textContent = (r.text || r.caption || "[media]").slice(0, 120);
    bubble.append(quote);
  }
  if (message.photo && message.photo.length) {
    const img = document.createElement("img");
    img.src = "/_emulator/files/" + encodeURIComponent(message.photo[message.photo.length - 1].file_id);
    img.alt = "photo";
    bubble.append(img);
  }
  if (message.document) {
    bubble.append(fileLink(message.document.file_id, "📎 " + (message.document.file_name || "document")));
  }
  if (message.sticker) bubble.append(message.sticker.emoji || "[sticker]");
  if (message.voice) bubble.append("🎤 voice " + message.voice.duration + "s");
  if (message.location) bubble.append("📍 " + message.location.latitude + ", " + message.location.longitude);
  if (message.contact) bubble.append("👤 " + message.contact.first_name + " " + message.contact.phone_number);
  if (message.new_chat_members) bubble.append("joined the chat");
  if (message.left_chat_member) bubble.append("left the chat");
  if (message.text !== undefined) bubble.append(formatted(message.text, message.entities));
  if (message.caption) bubble.append(formatted(message.caption, message.caption_entities));
  const meta = document.createElement("div");
  meta.className = "meta";
  const when = new Date((message.edit_date || message.date) * 1000);
  meta.textContent = (message.edit_date ? "edited " : "") + when.toLocaleTimeString();
  bubble.append(meta);
  node.append(bubble);
  if (message.reply_markup && message.reply_markup.inline_keyboard) node.append(inlineKeyboard(message));
  return node;
}

function upsert(message) {
  const fresh = messageNode(message);
  const old = current.nodes.get(message.message_id);
  if (old) {
    old.replaceWith(fresh);
  } else {
    const atBottom = els.messages.scrollHeight - els.messages.scrollTop - els.messages.clientHeight < 40;
    els.messages.append(fresh);
    if (atBottom || (message.from && message.from.id === current.persona.user_id)) {
      fresh.scrollIntoView({block: "end"});
    }
  }
  current.nodes.set(message.message_id, fresh);
}

function remove(message) {
  const node = current.nodes.get(message.message_id);
  if (node) node.remove();
  current.nodes.delete(message.message_id);
}

function toast(text, alertBox) {
  if (!text) return;
  if (alertBox) { window.alert(text); return; }
  els.toast.textContent = text;
  els.toast.hidden = false;
  clearTimeout(els.toast.timer);
  els.toast.timer = setTimeout(() => { els.toast.hidden = true; }, 3000);
}

function replyKeyboard(markup) {
  if (!markup) return;
  if (markup.remove_keyboard) { els.keyboard.hidden = true; els.keyboard.replaceChildren(); return; }
  if (!Array.isArray(markup.keyboard)) return;
  els.keyboard.replaceChildren();
  for (const row of markup.keyboard) {
    const line = document.createElement("div");
    line.className = "row";
    for (const button of row) {
      const label = typeof button === "string" ? button : button.text;
      const el = document.createElement("button");
      el.type = "button";
      el.className = "kb";
      el.textContent = label;
      el.addEventListener("click", () => {
        if (markup.one_time_keyboard) els.keyboard.hidden = true;
        send(label);
      });
      line.append(el);
    }
    els.keyboard.append(line);
  }
  els.keyboard.hidden = false;
}

function setStatus(text) { els.status.textContent = text; }

function setReply(message) {
  current.replyTo = message || null;
  els.replyBar.hidden = !message;
  if (message) {
    const preview = message.text || message.caption || "[media]";
    els.replyText.textContent = "Replying to: " + preview.slice(0, 80);
  }
}

async function loadChats() {
  // Groups the emulator knows (e.g. the staff desk); keep the current choice if it still exists.
  const chosen = els.chat.value;
  const chats = await api("GET", "chats?type=group,supergroup").catch(() => []);
  els.chat.replaceChildren(new Option("private chat", ""));
  for (const entry of chats) {
    els.chat.append(new Option(entry.chat.title, String(entry.chat.id)));
  }
  els.chat.value = chats.some((e) => String(e.chat.id) === chosen) ? chosen : "";
}

function apply(entry) {
  const params = entry.params || {};
  switch (entry.method) {
    case "sendChatAction":
      setStatus(String(params.action || "typing").replace(/_/g, " ") + "…");
      clearTimeout(typingTimer);
      typingTimer = setTimeout(() => setStatus("online"), 5000);
      return;
    case "answerCallbackQuery":
      toast(params.text, params.show_alert);
      return;
    case "deleteMessage":
      if (entry.message) remove(entry.message);
      return;
    default:
      if (entry.message) {
        clearTimeout(typingTimer);
        setStatus("online");
        upsert(entry.message);
        if (entry.method.startsWith("send") || entry.method === "copyMessage") {
          replyKeyboard(params.reply_markup);
        }
      }
  }
}

async function poll(session) {
  while (current === session) {
    try {
      const path = `sent?chat_id=${session.chatId}&after=${session.after}&timeout=25&all=1`;
      const entries = await api("GET", path, undefined, session.abort.signal);
      if (current !== session) return;
      setStatus("online");
      for (const entry of entries) {
        session.after = Math.max(session.after, entry.seq);
        apply(entry);
      }
    } catch (err) {
      if (current !== session) return;
      setStatus("offline — retrying");
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

async function open(personaKey) {
  if (current) current.abort.abort();
  const persona = personas.find((p) => p.key === personaKey) || personas[0];
  const groupId = els.chat.value ? Number(els.chat.value) : null;
  const session = {persona, chatId: groupId || persona.user_id, isGroup: groupId !== null,
                   after: 0, abort: new AbortController(), nodes: new Map(), replyTo: null};
  current = session;
  setReply(null);
  let query = "?persona=" + encodeURIComponent(persona.key);
  if (groupId !== null) query += "&chat=" + groupId;
  window.history.replaceState(null, "", query);
  els.messages.replaceChildren();
  els.keyboard.hidden = true;
  try {
    const history = await api("GET", `chats/${session.chatId}/history`, undefined, session.abort.signal);
    if (current !== session) return;
    session.after = history.last_seq || 0;
    for (const message of history.messages) upsert(message);
  } catch (err) {
    // No chat yet (404) → the conversation starts with this persona's first message.
    const sent = await api("GET", "sent?timeout=0&all=1").catch(() => []);
    session.after = sent.reduce((m, e) => Math.max(m, e.seq), 0);
  }
  poll(session);
}

async function send(text) {
  if (!current || !text.trim()) return;
  const body = {user: personaUser(current.persona), text};
  if (current.isGroup) body.chat = {id: current.chatId};
  if (current.replyTo) body.reply_to_message_id = current.replyTo.message_id;
  try {
    const result = await api("POST", "updates/message", body);
    setReply(null);
    upsert(result.message);
  } catch (err) {
    toast("Not sent: " + err.message);
  }
}

async function press(message, data) {
  try {
    await api("POST", "updates/callback", {
      user: personaUser(current.persona), chat_id: message.chat.id,
      message_id: message.message_id, data,
    });
  } catch (err) {
    toast("Button failed: " + err.message);
  }
}

els.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = els.text.value;
  els.text.value = "";
  send(text);
});
els.persona.addEventListener("change", () => open(els.persona.value));
els.chat.addEventListener("change", () => open(els.persona.value));
els.replyCancel.addEventListener("click", () => setReply(null));
els.reload.addEventListener("click", async () => {
  await loadChats();
  open(els.persona.value);
});
loadChats().then(() => open(els.persona.value));
