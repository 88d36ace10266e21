"""Training in the assistant: "my courses", "next lesson".

Thin: who is asking (the gateway's signed identity) → training.learning → one template.
The lesson itself goes through the outbox at interactive priority (the worker sends it at
once); its buttons (`trn:` payloads) are handled by the gateway (training/telegram/learning.py)
and never go through NLU.
"""

from __future__ import annotations

from typing import Any

from bot.actions.sdk import Action, ActionContext, Dispatcher, Tracker
from core.screens import Screen
from training import learning
from training.content import Target


def _say(dispatcher: Dispatcher, screen: Screen) -> None:
    dispatcher.reply(screen.template, buttons=screen.buttons or None, **screen.vars)


class ActionMyCourses(Action):
    name = "action_my_courses"

    async def run(self, ctx: ActionContext, dispatcher: Dispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        """The dealer's courses with progress and a Continue button each (same as /courses)."""
        _say(dispatcher, await learning.my_courses(ctx.s, await ctx.sender(tracker)))
        return []


class ActionNextLesson(Action):
    name = "action_next_lesson"

    async def run(self, ctx: ActionContext, dispatcher: Dispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        """Queue the next lesson to the dealer's private chat and say so (same as /next)."""
        ident = await ctx.sender(tracker)
        learning.dealer_of(ident)  # unlinked: the link prompt, before anything is queued
        assert ident is not None
        target = Target(ident.telegram_user_id, ident.locale)  # a private chat's id is the user's
        _say(dispatcher, await learning.next_lesson(ctx.s, ident, target))
        return []
