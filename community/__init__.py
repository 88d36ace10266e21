"""Dealer community: tiered/regional groups, verified joining, announcements, moderation, points.

Services (no Telegram imports; the caller's session, never a commit): groups.py (registration,
settings, bot rights, migrations), membership.py (join decisions, sync with dealer records),
announcements.py (segments, drafts, campaigns), moderation.py, participation.py. The one
Telegram adapter is telegram.py; the CLI is `python -m community`. Points live in points/.
"""
