"""Where the monthly points leaderboards are posted: the registered dealer groups.

A group that serves one region gets that region's board, one that serves one tier gets the
tier's, any other the whole network's. Posting is off unless `points.leaderboard_posts`.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from community.models import CommunityGroup
from community.points.jobs import LeaderboardGroup, leaderboard_groups


@leaderboard_groups
async def community_groups(s: AsyncSession) -> list[LeaderboardGroup]:
    """Every active registered group, with the board that fits its segment."""
    out = []
    for g in await s.scalars(select(CommunityGroup).where(CommunityGroup.active.is_(True))
                             .order_by(CommunityGroup.id)):
        if len(g.regions or []) == 1:
            out.append(LeaderboardGroup(g.chat_id, "region", g.regions[0], g.locale))
        elif len(g.tiers or []) == 1:
            out.append(LeaderboardGroup(g.chat_id, "tier", g.tiers[0], g.locale))
        else:
            out.append(LeaderboardGroup(g.chat_id, "all", None, g.locale))
    return out
