"""Reward points in the assistant: "how many points do I have", "I want to redeem points".

Thin: who is asking (the gateway's signed identity) → community.points.chat → one template.
The catalogue's buttons carry `pts:` payloads that the gateway handles itself
(bot/gateway/points.py): choosing and confirming never go through NLU.
"""

from __future__ import annotations

from typing import Any

from bot.actions.sdk import Action, ActionContext, Dispatcher, Tracker
from community.points import chat


def _say(dispatcher: Dispatcher, screen: chat.Screen) -> None:
    dispatcher.reply(screen.template, buttons=screen.buttons or None, **screen.vars)


class ActionPointsBalance(Action):
    name = "action_points_balance"

    async def run(self, ctx: ActionContext, dispatcher: Dispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        """Balance, pending, debt, expiring soon and recent history (same as /points)."""
        account = chat.account_of(await ctx.sender(tracker), ctx.settings.points)
        _say(dispatcher, await chat.balance_screen(ctx.s, account, cfg=ctx.settings.points))
        return []


class ActionRedeemPoints(Action):
    name = "action_redeem_points"

    async def run(self, ctx: ActionContext, dispatcher: Dispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        """The rewards catalogue with a button per reward (same as /redeem)."""
        account = chat.account_of(await ctx.sender(tracker), ctx.settings.points)
        _say(dispatcher, await chat.catalogue_screen(ctx.s, account))
        return []
