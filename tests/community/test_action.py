"""action_my_groups through the action server: the proven dealer gets exactly its groups'
links; an unproven sender id (someone posting to Rasa as the dealer) gets none."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from bot.actions.sdk import ActionContext
from bot.actions.server import create_app
from community import groups
from core import identity
from core.db import Database
from core.models import Customer, TelegramIdentity
from core.settings import load_settings

TOKEN = "tok"
KEY = "signing-key"


def _call(sender: str, metadata: dict) -> dict:
    return {"next_action": "action_my_groups", "sender_id": sender, "version": "3.6.21",
            "domain": {}, "tracker": {"sender_id": sender, "slots": {}, "events": [],
                                      "latest_message": {"text": "my groups",
                                                         "intent": {"name": "my_groups"},
                                                         "metadata": metadata}}}


async def test_my_groups_action(db: Database) -> None:
    async with db.transaction() as s:
        c = Customer(code="D1", kind="dealer", name="Co", region="华东", tier="key")
        s.add(c)
        await s.flush()
        s.add(TelegramIdentity(telegram_user_id=77, customer_id=c.id))
        await groups.register(s, -1, "East", actor="t", options={"regions": "华东"})
        await groups.register(s, -2, "South", actor="t", options={"regions": "华南"})
        await groups.set_invite_link(s, -1, "https://t.me/+east")
        await groups.set_invite_link(s, -2, "https://t.me/+south")
    settings = load_settings(env={"IDENTITY_SIGNING_KEY": KEY})
    app = create_app(ActionContext(db=db, settings=settings), TOKEN)
    async with TestClient(TestServer(app)) as client:
        proof = {identity.METADATA_KEY: identity.sign(KEY, "77")}
        body = await (await client.post(f"/webhook?token={TOKEN}",
                                        json=_call("77", proof))).json()
        got = body["responses"][0]["custom"]["vars"]
        assert got["reason"] is None
        assert [g["link"] for g in got["groups"]] == ["https://t.me/+east"]
        forged = {identity.METADATA_KEY: identity.sign("guess", "77")}
        body = await (await client.post(f"/webhook?token={TOKEN}",
                                        json=_call("77", forged))).json()
        got = body["responses"][0]["custom"]["vars"]
        assert got == {"reason": "not_linked", "groups": []}
