"""Dealer community: tiered/regional groups, verified joining, announcements, moderation, points.

Not built yet: the running spine and the retailer assistant come first (see README).
"""
