"""Per-chat order of updates (the gateway's update processor)."""

from __future__ import annotations

import asyncio

from telegram import Chat, Message, Update

from bot.gateway.turns import ChatOrderedProcessor


def update(update_id: int, chat_id: int) -> Update:
    chat = Chat(chat_id, "private")
    return Update(update_id, message=Message(update_id, None, chat))  # type: ignore[arg-type]


async def test_one_chat_in_order_other_chats_alongside() -> None:
    processor = ChatOrderedProcessor(256)
    done: list[tuple[int, int]] = []

    async def handle(u: Update, delay: float) -> None:
        await asyncio.sleep(delay)
        done.append((u.effective_chat.id, u.update_id))  # type: ignore[union-attr]

    # Chat 1's first update is slow; its second must still come after it; chat 2 need not wait.
    jobs = [(update(1, 1), 0.2), (update(2, 1), 0.0), (update(3, 2), 0.0)]
    await asyncio.gather(*[processor.process_update(u, handle(u, d)) for u, d in jobs])
    assert [i for c, i in done if c == 1] == [1, 2]
    assert done[0] == (2, 3)
    assert processor._locks == {}  # no lock kept for idle chats
