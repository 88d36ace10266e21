"""Sandbox demo dealer groups: in the emulator (bot as admin) and registered in the DB, each
with its join-request invite link, so the demo dealer can ask "my groups" and join at once."""

from __future__ import annotations

import aiohttp

from core.db import Database
from core.settings import Settings

DEMO_GROUPS = [
    {"id": -1001000000101, "title": "华东重点经销商群", "tiers": "key,potential",
     "regions": "华东", "lang": "zh-Hans"},
    {"id": -1001000000102, "title": "华南经销商群", "regions": "华南", "lang": "zh-Hans"},
    {"id": -1001000000103, "title": "Dealer Desk community", "lang": "en"},
]


async def register_demo_groups(settings: Settings) -> list[str]:
    """Create the demo groups in the emulator and register them (idempotent)."""
    from community import groups
    from community.__main__ import create_link

    async with aiohttp.ClientSession() as http:
        for g in DEMO_GROUPS:
            body = {"id": g["id"], "type": "supergroup", "title": g["title"],
                    "bot_status": "administrator", "members": []}
            async with http.post(f"{settings.sandbox.url}/_emulator/chats", json=body) as resp:
                if resp.status >= 400:
                    raise RuntimeError(f"emulator refused {g['title']}: {await resp.text()}")
    db = Database(settings.resolved_database_url())
    links = []
    try:
        async with db.transaction() as s:
            for g in DEMO_GROUPS:
                options = {k: str(g[k]) for k in ("tiers", "regions", "lang") if k in g}
                if settings.staff_chat_id is not None:
                    options["log"] = str(settings.staff_chat_id)
                view, _ = await groups.register(s, int(g["id"]), str(g["title"]),
                                                actor="sandbox", options=options)
                if view.invite_link:  # a fresh emulator does not know old links
                    (await groups.get(s, view.chat_id)).invite_link = None
        for g in DEMO_GROUPS:
            links.append(await create_link(settings, db, int(g["id"])) or "")
    finally:
        await db.dispose()
    return links
