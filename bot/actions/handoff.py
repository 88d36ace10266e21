"""Hand-off to a person: the gateway opens the ticket and relays, so it also works when Rasa is
down (the hand-off button is handled without NLU). The action only tells the gateway to start."""

from __future__ import annotations

from typing import Any

from bot.actions.sdk import Action, ActionContext, Dispatcher, Tracker


class ActionHumanHandoff(Action):
    name = "action_human_handoff"

    async def run(self, ctx: ActionContext, dispatcher: Dispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        """Ask the gateway to open a hand-off (or complaint) ticket for this chat."""
        kind = "complaint" if tracker.intent == "complaint" else "handoff"
        dispatcher.messages.append({"custom": {"command": "handoff", "kind": kind,
                                               "reason": tracker.text[:500]}})
        return []
