"""The few pieces of Rasa's action protocol we need (rasa-sdk's pins clash with ours).

Rasa POSTs `{next_action, sender_id, tracker, domain, version}` to the action server and reads
`{events, responses}` back. Responses here are custom payloads naming a template, so the gateway
renders every reply in the user's locale.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core import identity
from core.db import Database
from core.services import accounts
from core.services.accounts import IdentityView
from core.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Tracker:
    """A read-only view of the conversation state Rasa sends with each action call."""

    sender_id: str
    slots: dict[str, Any] = field(default_factory=dict)
    latest_message: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tracker:
        """Build from the `tracker` object of an action call."""
        return cls(
            sender_id=str(data.get("sender_id", "")),
            slots=dict(data.get("slots") or {}),
            latest_message=dict(data.get("latest_message") or {}),
            events=list(data.get("events") or []),
        )

    @property
    def text(self) -> str:
        """The user's latest message text."""
        return str(self.latest_message.get("text") or "")

    @property
    def intent(self) -> str:
        """The latest message's intent name."""
        return str((self.latest_message.get("intent") or {}).get("name") or "")

    def entity(self, name: str) -> str | None:
        """First value of an entity in the latest message."""
        for ent in self.latest_message.get("entities") or []:
            if ent.get("entity") == name and ent.get("value") not in (None, ""):
                return str(ent["value"])
        return None

    def entity_values(self, name: str) -> list[str]:
        """Every value of an entity in the latest message."""
        return [str(e["value"]) for e in self.latest_message.get("entities") or []
                if e.get("entity") == name and e.get("value")]

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata the channel sent with the latest user message (Rasa 3.6 copies it to
        `latest_message.metadata`)."""
        meta = self.latest_message.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def telegram_user_id(self) -> int | None:
        """The sender as a Telegram user id (the gateway uses it as Rasa's sender id).

        Not proof of anything: anyone reaching Rasa's REST channel picks the sender id. Use
        ActionContext.sender(), which checks the gateway's signature.
        """
        try:
            return int(self.sender_id)
        except ValueError:
            return None


class Dispatcher:
    """Collects the replies an action sends, like rasa-sdk's CollectingDispatcher."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def reply(self, template: str, buttons: list[dict[str, str]] | None = None,
              **variables: Any) -> None:
        """Queue a reply rendered later from `template` in the user's locale."""
        custom: dict[str, Any] = {"template": template, "vars": variables}
        if buttons:
            custom["buttons"] = buttons
        self.messages.append({"custom": custom})


@dataclass
class ActionContext:
    """What every action may use: settings and the session of this call's unit of work.

    The server holds one context without a session and gives each call a copy with its own
    session (`for_call`), committed once after the action ran.
    """

    db: Database
    settings: Settings
    session: AsyncSession | None = None

    def for_call(self, session: AsyncSession) -> ActionContext:
        """A copy bound to one call's session."""
        return replace(self, session=session)

    @property
    def s(self) -> AsyncSession:
        """This call's session."""
        if self.session is None:
            raise RuntimeError("ActionContext.s used outside an action call")
        return self.session

    def sender_proven(self, tracker: Tracker) -> bool:
        """True if the gateway signed this sender id recently (IDENTITY_SIGNING_KEY)."""
        return identity.verify_metadata(self.settings.secrets.identity_signing_key,
                                        tracker.sender_id, tracker.metadata)

    async def sender(self, tracker: Tracker) -> IdentityView | None:
        """Who is asking: the Telegram identity behind Rasa's sender id, if the gateway proved
        it; None (an unknown user: no account data) for an unproven or unknown sender."""
        user_id = tracker.telegram_user_id
        if user_id is None:
            return None
        if not self.sender_proven(tracker):
            log.warning("unproven sender id %r: treated as unknown", tracker.sender_id[:40])
            return None
        return await accounts.get_identity(self.s, user_id)


HANDOFF_BUTTON = {"label_key": "button_human", "payload": "/human_handoff"}


def intent_button(intent: str, label: str, **entities: str) -> dict[str, str]:
    """A button whose payload triggers `intent` with entities, e.g. /order_status{...}."""
    payload = f"/{intent}" + json.dumps(entities, separators=(",", ":"))
    return {"label": label, "payload": payload}


def slot_set(name: str, value: Any) -> dict[str, Any]:
    """The SlotSet event."""
    return {"event": "slot", "name": name, "value": value, "timestamp": None}


def conversation_paused() -> dict[str, Any]:
    """The ConversationPaused event: Rasa ignores the user until resumed."""
    return {"event": "pause", "timestamp": None}


def followup(action: str) -> dict[str, Any]:
    """The FollowupAction event."""
    return {"event": "followup", "name": action, "timestamp": None}


class Action:
    """Base class: subclasses set `name` and implement `run`."""

    name: str = ""

    async def run(self, ctx: ActionContext, dispatcher: Dispatcher,
                  tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        """Do the work; return Rasa events."""
        raise NotImplementedError
