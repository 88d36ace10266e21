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
from core.services.catalogue import ProductRef


def product_button(intent: str, p: ProductRef) -> dict[str, str]:
    """A button that repeats the question for one specific product."""
    return intent_button(intent, f"{p.name_zh} {p.name_en} ({p.sku})".strip(), product=p.sku)


def product_vars(p: ProductRef) -> dict[str, str]:
    """Names of a product for templates."""
    return {"sku": p.sku, "name_zh": p.name_zh, "name_en": p.name_en}


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
        mention = _mention(tracker)
        res = await catalogue.resolve_product(ctx.db, mention)
        if res.unique is None and mention != untagged(tracker.text) and tracker.text:
            # The model sometimes tags only the head noun (香菇炖鸡面 → 面); the whole
            # question may still name exactly one product.
            whole = await catalogue.resolve_product(ctx.db, untagged(tracker.text))
            if whole.unique is not None:
                res = whole
        if not res.matches and await catalogue.catalogue_is_empty(ctx.db):
            dispatcher.reply("catalogue_empty", buttons=[HANDOFF_BUTTON])
            return [slot_set("product", None)]
        if res.unique is None and not res.matches:
            if res.suggestions:
                dispatcher.reply("product_not_found", given=mention[:60], suggested=True,
                                 buttons=[product_button("stock_query", p)
                                          for p in res.suggestions])
            else:
                dispatcher.reply("product_not_found", given=mention[:60])
            return [slot_set("product", None)]
        if res.unique is None:
            dispatcher.reply("product_pick", buttons=[
                product_button("stock_query", p) for p in res.matches])
            return [slot_set("product", None)]
        stock_cfg = ctx.settings.stock
        answer = await catalogue.stock_for(ctx.db, res.unique, stock_cfg.low_threshold)
        similar = []
        if answer.status == "out":
            similar = [product_vars(p) for p in
                       await catalogue.similar_in_stock(ctx.db, res.unique)]
        buttons = None
        if answer.status == "out":  # handled by the gateway itself, no NLU needed
            buttons = [{"label_key": "button_notify_restock",
                        "payload": f"notify:{res.unique.sku}"}]
        dispatcher.reply("stock_answer", similar=similar, buttons=buttons,
                         **answer.as_vars(show_quantities=stock_cfg.show_quantities))
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
            res = await catalogue.resolve_product(ctx.db, mention)
            product = res.unique
        today = promotions.today_in(ctx.settings.app.timezone)
        found = await promotions.active_promotions(
            ctx.db, today=today,
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
