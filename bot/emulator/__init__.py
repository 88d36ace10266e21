"""Local Telegram Bot API emulator with a control API and a sandbox chat page."""

from bot.emulator.server import (
    RunningEmulator,
    create_app,
    get_state,
    running_emulator,
    start_emulator,
)
from bot.emulator.state import EmulatorState

__all__ = [
    "EmulatorState",
    "RunningEmulator",
    "create_app",
    "get_state",
    "running_emulator",
    "start_emulator",
]
