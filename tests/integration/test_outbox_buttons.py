"""A long button payload queued in the outbox works when pressed, on any gateway."""

from core.db import Database
from core.services import callbacks, outbox
from tests.conftest import uow

LONG = "/order_status" + '{"order_id":"SO20261115-0123","note":"' + "x" * 80 + '"}'


async def test_long_button_payloads_are_stored_with_the_message(db: Database) -> None:
    assert callbacks.needs_key(LONG)
    await uow(db, outbox.enqueue, 42, text="pick one",
              buttons=[{"label": "A", "payload": LONG}, {"label": "B", "payload": "/short"}])
    # The gateway decodes the key the worker's keyboard sends as callback_data.
    assert await uow(db, callbacks.load, callbacks.key_for(LONG)) == LONG
    assert await uow(db, callbacks.load, "/short") == "/short"
