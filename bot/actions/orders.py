"""Order status: by number, or the linked account's open orders."""

from __future__ import annotations

from typing import Any

from bot.actions.sdk import (
    Action,
    ActionContext,
    Dispatcher,
    Tracker,
    intent_button,
    slot_set,
)
from core import order_numbers
from core.services import orders


def order_button(order_no: str) -> dict[str, str]:
    """A button that asks for this order's status."""
    return intent_button("order_status", order_no, order_id=order_no)


class ActionOrderStatus(Action):
    name = "action_order_status"

    async def run(self, ctx: ActionContext, dispatcher: Dispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        """Answer with the order's status, or offer the customer's open orders."""
        ident = await ctx.sender(tracker)
        if ident is None or ident.customer_id is None:
            dispatcher.reply("link_required")
            return [slot_set("order_id", None)]

        raw = tracker.entity("order_id") or tracker.slots.get("order_id")
        # The model may tag nothing (or only the default shape, when the operator configured
        # another orders.number_pattern): the grammar searches the raw text as well.
        if not raw or orders.normalize_order_no(str(raw)) is None:
            in_text = order_numbers.find_all(tracker.text)
            raw = in_text[0] if in_text else raw
        answer = await orders.answer_order_question(ctx.s, ident.customer_id,
                                                    str(raw) if raw else None)
        dispatcher.reply(answer.template, buttons=[order_button(no) for no in answer.choices]
                         or None, **answer.vars)
        return [slot_set("order_id", None)]
