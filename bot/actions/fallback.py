"""Two-stage fallback: offer the likely intents as buttons before giving up."""

from __future__ import annotations

from typing import Any

from bot.actions.sdk import Action, ActionContext, Dispatcher, Tracker

# Intents worth offering; small talk is not a useful guess.
OFFERABLE = {
    "order_status", "stock_query", "promotion_query", "faq", "human_handoff", "complaint",
    "link_account", "points_balance", "redeem_points", "my_courses", "next_lesson",
    "ask_capabilities",
}


class ActionDefaultAskAffirmation(Action):
    name = "action_default_ask_affirmation"

    async def run(self, ctx: ActionContext, dispatcher: Dispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        """Ask which of the top intents the user meant, as buttons."""
        ranking = tracker.latest_message.get("intent_ranking") or []
        buttons = []
        for item in ranking:
            name = item.get("name")
            if name in OFFERABLE and len(buttons) < 3:
                buttons.append({"label_key": f"intent_{name}", "payload": f"/{name}"})
        buttons.append({"label_key": "button_something_else", "payload": "/out_of_scope"})
        dispatcher.reply("ask_affirmation", buttons=buttons)
        return []
