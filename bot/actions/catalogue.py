"""Stock and promotion questions, answered from the imported catalogue."""

from __future__ import annotations

import re
from typing import Any

from bot.actions.sdk import (
    HANDOFF_BUTTON,
    Action,
    ActionContext,
    Dispatcher,
    Tracker,
    intent_button,
    slot_set,
)
from core.services import catalogue, promotions
from core.services.catalogue import ProductRef, product_vars


def product_button(intent: str, p: ProductRef) -> dict[str, str]:
    """A button that repeats the question for one specific product."""
    return intent_button(intent, f"{p.name_zh} {p.name_en} ({p.sku})".strip(), product=p.sku)


_TAG = re.compile(r"</?[A-Za-z][^<>]*>")


def untagged(text: str) -> str:
    """The text without HTML tags: `<b>is</b> the water in stock` names no product `b`."""
    return " ".join(_TAG.sub(" ", text).split())


def _mention(tracker: Tracker) -> str:
    # The entity when the model found one; else the whole question (the resolver strips filler).
    return untagged(tracker.entity("product") or tracker.text)


class ActionStockQuery(Action):
    name = "action_stock_query"

    async def run(self, ctx: ActionContext, dispatcher: Dispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        """Say whether a product is available, low or out of stock, per warehouse."""
        reply = await catalogue.answer_stock_question(ctx.s, _mention(tracker),
                                                      untagged(tracker.text), ctx.settings.stock)
        buttons = [product_button("stock_query", p) for p in reply.choices]
        if reply.notify_sku:  # handled by the gateway itself, no NLU needed
            buttons.append({"label_key": "button_notify_restock",
                            "payload": f"notify:{reply.notify_sku}"})
        if reply.offer_handoff:
            buttons.append(HANDOFF_BUTTON)
        dispatcher.reply(reply.template, buttons=buttons or None, **reply.vars)
        return [slot_set("product", None)]


class ActionPromotionQuery(Action):
    name = "action_promotion_query"

    async def run(self, ctx: ActionContext, dispatcher: Dispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        """List today's promotions that apply to this customer (and product, if named)."""
        ident = await ctx.sender(tracker)
        product = None
        mention = tracker.entity("product")
        if mention:
            res = await catalogue.resolve_product(ctx.s, mention)
            product = res.unique
        today = promotions.today_in(ctx.settings.app.timezone)
        found = await promotions.active_promotions(
            ctx.s, today=today,
            region=ident.customer_region if ident else None,
            channel=ident.customer_channel if ident else None,
            sku=product.sku if product else None,
        )
        dispatcher.reply(
            "promotions_list", promotions=[p.as_vars() for p in found],
            product=product_vars(product) if product else None,
            linked=bool(ident and ident.customer_id),
        )
        return [slot_set("product", None)]
