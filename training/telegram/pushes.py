"""Training in Telegram: pushes (being built)."""

from __future__ import annotations

from telegram.ext import Application


def register(app: Application) -> None:
    """Add this module's handlers to the application."""
