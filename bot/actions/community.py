"""action_my_groups: the dealer groups this (proven) sender may join, with invite links."""

from __future__ import annotations

from typing import Any

from bot.actions.sdk import Action, ActionContext, Dispatcher, Tracker
from community.membership import groups_for_user


class ActionMyGroups(Action):
    name = "action_my_groups"

    async def run(self, ctx: ActionContext, dispatcher: Dispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        """List exactly the groups the linked dealer fits (none for an unproven sender)."""
        ident = await ctx.sender(tracker)
        if ident is None:
            dispatcher.reply("community_my_groups", reason="not_linked", groups=[])
            return []
        reason, groups = await groups_for_user(ctx.s, ident.telegram_user_id)
        dispatcher.reply("community_my_groups", reason=reason,
                         groups=[{"title": g.title, "link": g.invite_link or "",
                                  "member": g.member} for g in groups])
        return []
