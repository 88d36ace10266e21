"""The sandbox chat page, its static files, the browser renderer and the command line."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from telegram import Bot
from telegram.error import BadRequest

from sandbox.emulator import RunningEmulator, running_emulator
from sandbox.emulator.server import DEFAULT_PERSONAS, validate_personas
from tests.emulator.conftest import RITA, Control

STATIC = Path(__file__).resolve().parents[2] / "sandbox" / "emulator" / "static"
PROJECT = Path(__file__).resolve().parents[2]


async def test_page_lists_default_personas(emu: RunningEmulator, http) -> None:
    async with http.get(f"{emu.url}/") as resp:
        assert resp.status == 200
        html = await resp.text()
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    for persona in DEFAULT_PERSONAS:
        assert persona["label"] in html
    assert [p["user_id"] for p in DEFAULT_PERSONAS] == [1001, 1002, 1003]
    # everything is served locally: no absolute URLs to load anything from
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    for name in ("chat.js", "render.js", "chat.css"):
        async with http.get(f"{emu.url}/static/{name}") as resp:
            assert resp.status == 200
            source = await resp.text()
        # the only network access is fetch("/_emulator/...") on the page's own origin
        assert re.findall(r"fetch\((.*?),", source) in ([], ['"/_emulator/" + path'])
        assert not re.search(r"url\(|@import|\bimport\s", source), name
        assert all(v.startswith('"/_emulator/files/"')
                   for v in re.findall(r"\.src\s*=\s*(.+?);", source)), name


async def test_custom_personas_are_escaped(http) -> None:
    personas = [{"key": "evil", "label": "<script>alert('x')</script> Shop", "user_id": 7,
                 "first_name": "E", "language_code": "en"},
                {"key": "dealer", "label": "经销商 Dealer", "user_id": 8, "first_name": "D"}]
    async with running_emulator(personas=personas, bot_username="dealer_desk_bot") as emu:
        async with http.get(f"{emu.url}/?persona=dealer") as resp:
            html = await resp.text()
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Shop" in html
    assert "<script>alert" not in html
    assert '<option value="dealer" selected>经销商 Dealer</option>' in html
    assert "@dealer_desk_bot" in html
    data = re.search(r'<script id="personas-data" type="application/json">(.*?)</script>',
                     html, re.S)
    assert data and json.loads(data.group(1))[0]["label"].startswith("<script>")


async def test_bot_html_is_not_injectable(bot: Bot, ctl: Control, emu, http) -> None:
    await ctl.say(RITA, "hi <b>there</b>")
    with pytest.raises(BadRequest, match='unsupported start tag "script"'):
        await bot.send_message(RITA["id"], "<script>alert(1)</script>", parse_mode="HTML")
    await bot.send_message(RITA["id"], "<script>alert(1)</script>")  # plain text
    await bot.send_message(RITA["id"], '<b>bold</b> <a href="https://shop.example/?a=1&amp;b=2">'
                           "shop</a> &lt;img src=x onerror=alert(1)&gt;", parse_mode="HTML")
    async with http.get(f"{emu.url}/?persona=retailer") as resp:
        html = await resp.text()
    assert "hi &lt;b&gt;there&lt;/b&gt;" in html  # the user's text, escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html and "<img" not in html
    assert "<b>bold</b>" in html
    assert ('<a href="https://shop.example/?a=1&amp;b=2" rel="noopener noreferrer" '
            'target="_blank">shop</a>') in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    history = await ctl.get(f"chats/{RITA['id']}/history")
    assert [m["text"] for m in history["messages"]][1] == "<script>alert(1)</script>"


def test_browser_code_never_parses_strings_as_html() -> None:
    for name in ("chat.js", "render.js"):
        source = (STATIC / name).read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                     "new Function"):
            assert sink not in source, (name, sink)


NODE_HARNESS = r"""
const R = require(process.argv[2]);
class El {
  constructor(tag) { this.tag = tag; this.kids = []; this.attrs = {}; this.classList = {add() {}}; }
  append(...xs) { this.kids.push(...xs); }
  addEventListener() {}
  set href(v) { this.attrs.href = v; } set target(v) { this.attrs.target = v; }
  set rel(v) { this.attrs.rel = v; } set className(v) { this.attrs.class = v; }
}
// serialise like a browser would: text nodes are escaped, never parsed
const esc = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
  .replace(/"/g, "&quot;");
const html = (n) => typeof n === "string" ? esc(n) : "<" + n.tag +
  Object.entries(n.attrs).map(([k, v]) => ` ${k}="${esc(v)}"`).join("") + ">" +
  n.kids.map(html).join("") + "</" + n.tag + ">";
R.use({createElement: (t) => new El(t)});
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
console.log(JSON.stringify(cases.map(([text, ents]) => html(R.formatted(text, ents)))));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_browser_renderer_with_node(tmp_path: Path) -> None:
    harness = tmp_path / "harness.js"
    harness.write_text(NODE_HARNESS, encoding="utf-8")
    cases = [
        ["<script>alert(1)</script>", []],
        ["😀 ok x", [{"type": "bold", "offset": 3, "length": 4},
                     {"type": "italic", "offset": 6, "length": 1}]],
        ["click", [{"type": "text_link", "offset": 0, "length": 5, "url": "javascript:alert(1)"}]],
        ["see https://a.example", [{"type": "url", "offset": 4, "length": 17}]],
        ["s", [{"type": "spoiler", "offset": 0, "length": 1}]],
    ]
    done = subprocess.run(["node", str(harness), str(STATIC / "render.js")],
                          input=json.dumps(cases), capture_output=True, text=True, timeout=20,
                          check=True)
    assert json.loads(done.stdout) == [
        '<div class="text">&lt;script&gt;alert(1)&lt;/script&gt;</div>',
        '<div class="text">😀 <b>ok <i>x</i></b></div>',
        '<div class="text"><span>click</span></div>',
        '<div class="text">see <a href="https://a.example/" target="_blank" '
        'rel="noopener noreferrer">https://a.example</a></div>',
        '<div class="text"><span class="spoiler">s</span></div>',
    ]


async def test_raw_files_never_render_as_html(bot: Bot, ctl: Control, emu, http) -> None:
    from telegram import InputFile

    await ctl.say(RITA, "hi")
    sent = await bot.send_document(RITA["id"], InputFile(b"<script>x</script>",
                                                         filename="evil.html"))
    async with http.get(f"{emu.url}/_emulator/files/{sent.document.file_id}") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/octet-stream"
        assert resp.headers["Content-Disposition"].startswith("attachment")


def test_personas_are_validated() -> None:
    with pytest.raises(ValueError, match="lacks"):
        validate_personas([{"key": "x", "label": "X"}])
    with pytest.raises(ValueError, match="duplicate"):
        validate_personas([{"key": "a", "label": "A", "user_id": 1, "first_name": "A"}] * 2)
    assert validate_personas([{"key": "a", "label": "A", "user_id": "5", "first_name": "A",
                               "customer_code": "R001"}]) == [
        {"key": "a", "label": "A", "user_id": 5, "first_name": "A", "language_code": "en"}]


def test_cli_help() -> None:
    done = subprocess.run([sys.executable, "-m", "sandbox.emulator", "--help"], cwd=PROJECT,
                          capture_output=True, text=True, timeout=30, check=True)
    assert "--personas-json" in done.stdout and "127.0.0.1" in done.stdout


async def test_cli_serves_on_localhost(tmp_path: Path, http) -> None:
    personas = tmp_path / "personas.json"
    personas.write_text(json.dumps([{"key": "r", "label": "Retail 零售", "user_id": 1001,
                                     "first_name": "R", "language_code": "zh-hans"}]),
                        encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox.emulator", "--port", "0", "--personas-json", str(personas),
        cwd=PROJECT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url, line
        async with http.get(f"{url.group(0)}/") as resp:
            assert "Retail 零售" in await resp.text()
        async with http.get(f"{url.group(0)}/_emulator/health") as resp:
            assert (await resp.json())["ok"] is True
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_page_renders_a_group_chat_with_sender_names(bot: Bot, ctl: Control, emu,
                                                           http) -> None:
    await ctl.post("chats", {"id": -100777, "type": "supergroup", "title": "Staff <desk>"})
    await ctl.post("updates/message", {"user": RITA, "chat": {"id": -100777}, "text": "hello"})
    await bot.send_message(-100777, "<i>ticket</i>", parse_mode="HTML")
    async with http.get(f"{emu.url}/?persona=dealer&chat=-100777") as resp:
        page = await resp.text()
    assert '<option value="-100777" selected>Staff &lt;desk&gt;</option>' in page
    assert '<div class="sender">Rita</div><div class="text">hello</div>' in page
    assert '<div class="sender">Sandbox Bot</div><div class="text"><i>ticket</i></div>' in page


CSS_RULE_RE = re.compile(r"([^{}]+)\{([^{}]*)\}")


def _display_rules(css: str) -> list[tuple[list[str], str, bool]]:
    """(selectors, display value, !important) of every rule that sets display."""
    rules = []
    for selectors, body in CSS_RULE_RE.findall(re.sub(r"/\*.*?\*/", "", css, flags=re.S)):
        match = re.search(r"(?:^|;)\s*display\s*:\s*([^;!]+?)\s*(!important)?\s*(?:;|$)",
                          body)
        if match:
            rules.append(([s.strip() for s in selectors.split(",")], match.group(1),
                          bool(match.group(2))))
    return rules


async def test_hidden_bars_stay_hidden(emu: RunningEmulator, http) -> None:
    # A class rule with "display: flex" beats the browser's own [hidden] { display: none }:
    # the empty reply bar with its × showed all the time. Every element the page starts
    # hidden must really be hidden by the stylesheet's cascade.
    async with http.get(f"{emu.url}/") as resp:
        page = await resp.text()
    async with http.get(f"{emu.url}/static/chat.css") as resp:
        rules = _display_rules(await resp.text())
    hidden = re.findall(r"<\w+ ([^>]*\bhidden\b[^>]*)>", page)
    classes = [re.search(r'class="([^"]+)"', attrs).group(1).split() for attrs in hidden]
    assert ["reply-bar"] in classes and ["toast"] in classes
    hides = {sel for sels, value, important in rules if value == "none" and important
             for sel in sels}
    for names in classes:
        shown_by = [sel for sels, value, _ in rules if value != "none" for sel in sels
                    if sel in {f".{n}" for n in names}]
        if shown_by:
            assert "[hidden]" in hides or any(f".{n}[hidden]" in hides for n in names), \
                (names, shown_by)
