"""The gateway's outbound layer: one retry policy (the rate limiter's), failures raised."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from telegram.error import RetryAfter, TimedOut

from bot.gateway import outbound
from bot.gateway.context import Turn
from bot.gateway.render import Outgoing, split_text


class FakeBot:
    """Fails the first `fail` calls with `error`, then accepts."""

    def __init__(self, error: Exception | None = None, fail: int = 0) -> None:
        self.error, self.fail, self.calls = error, fail, 0
        self.texts: list[str] = []

    async def send_message(self, chat_id: int, text: str, **_kw: object) -> object:
        self.calls += 1
        if self.calls <= self.fail and self.error is not None:
            raise self.error
        self.texts.append(text)
        return SimpleNamespace(message_id=self.calls, chat_id=chat_id)


def context(bot: FakeBot) -> SimpleNamespace:
    return SimpleNamespace(bot=bot, bot_data={}, turn=Turn(1))


async def test_retry_after_beyond_the_limiter_is_raised_not_swallowed() -> None:
    bot = FakeBot(RetryAfter(dt.timedelta(seconds=0)), fail=10)
    with pytest.raises(RetryAfter):
        await outbound.send(context(bot), 5, Outgoing("hi"))
    assert bot.calls == 1  # the limiter retried already; nothing here retries on top


async def test_a_timeout_is_not_sent_again() -> None:
    bot = FakeBot(TimedOut(), fail=1)
    with pytest.raises(TimedOut):
        await outbound.send(context(bot), 5, Outgoing("hi"))
    assert bot.calls == 1  # it may have arrived: sending again could duplicate it


async def test_long_replies_are_split_and_noted_for_the_transcript() -> None:
    bot = FakeBot()
    ctx = context(bot)
    sent = await outbound.send_html(ctx, 5, "x" * 5000 + "\n" + "y" * 10)
    assert len(sent) == 2 and all(len(t) <= 4096 for t in bot.texts)
    assert "".join(bot.texts).replace("\n", "") == "x" * 5000 + "y" * 10
    assert [who for _, who, _ in ctx.turn.lines] == ["bot", "bot"]
    assert split_text("short") == ["short"]
