"""Points errors: each carries the template key a chat adapter renders."""

from __future__ import annotations

from core.errors import DomainError


class NotEnoughPoints(DomainError):
    code = "points_not_enough"
    template = "points_not_enough"


class OutOfStock(DomainError):
    code = "points_out_of_stock"
    template = "points_out_of_stock"


class RewardUnavailable(DomainError):
    code = "points_reward_unavailable"
    template = "points_reward_unavailable"


class ReasonRequired(DomainError):
    code = "points_reason_required"
    template = "points_reason_required"


class NotEligible(DomainError):
    code = "points_not_eligible"
    template = "points_not_eligible"


class AlreadyDecided(DomainError):
    code = "points_request_decided"
    template = "points_request_decided"
