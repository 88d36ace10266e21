"""Telegram gateway, Rasa client, custom actions, reply rendering, sandbox and emulator."""
