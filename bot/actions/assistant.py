"""The registry of custom actions the Rasa domain declares."""

from __future__ import annotations

from bot.actions.catalogue import ActionPromotionQuery, ActionStockQuery
from bot.actions.community import ActionMyGroups
from bot.actions.fallback import ActionDefaultAskAffirmation
from bot.actions.handoff import ActionHumanHandoff
from bot.actions.orders import ActionOrderStatus
from bot.actions.points import ActionPointsBalance, ActionRedeemPoints
from bot.actions.sdk import Action
from bot.actions.training import ActionMyCourses, ActionNextLesson


def all_actions() -> list[Action]:
    """One instance of every custom action."""
    return [
        ActionOrderStatus(),
        ActionStockQuery(),
        ActionPromotionQuery(),
        ActionDefaultAskAffirmation(),
        ActionHumanHandoff(),
        ActionMyGroups(),
        ActionPointsBalance(),
        ActionRedeemPoints(),
        ActionMyCourses(),
        ActionNextLesson(),
    ]
