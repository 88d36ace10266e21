"""The action server speaks Rasa's protocol, refuses calls without the secret, never leaks."""

import datetime as dt
from decimal import Decimal

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.actions.sdk import ActionContext
from bot.actions.server import create_app
from core import identity
from core.db import Database
from core.models import Customer, Order, OrderLine, Product, TelegramIdentity
from core.settings import load_settings

TOKEN = "s3cret-token"
SIGNING_KEY = "identity-key-for-tests"


@pytest.fixture
async def client(db: Database):
    settings = load_settings(env={"IDENTITY_SIGNING_KEY": SIGNING_KEY})
    app = create_app(ActionContext(db=db, settings=settings), TOKEN)
    async with TestClient(TestServer(app)) as c:
        yield c


def call(action: str, sender: str = "77", text: str = "", entities=None,
         metadata: dict | None = None) -> dict:
    """An action call as Rasa makes it; the user message carries the gateway's proof."""
    if metadata is None:
        metadata = {identity.METADATA_KEY: identity.sign(SIGNING_KEY, sender)}
    return {"next_action": action, "sender_id": sender, "version": "3.6.21", "domain": {},
            "tracker": {"sender_id": sender, "slots": {}, "events": [],
                        "latest_message": {"text": text, "entities": entities or [],
                                           "intent": {"name": "order_status"},
                                           "metadata": metadata}}}


async def seed(db: Database) -> None:
    async with db.transaction() as s:
        a = Customer(code="R1", kind="retailer", name="A店")
        b = Customer(code="R2", kind="retailer", name="B店")
        p = Product(sku="BV-1", name_zh="冰红茶", name_en="Iced tea", unit="箱")
        s.add_all([a, b, p])
        await s.flush()
        s.add(TelegramIdentity(telegram_user_id=77, customer_id=a.id))
        for no, cust, status in [("SO20261101-0001", a, "shipped"),
                                 ("SO20261101-0002", b, "pending")]:
            o = Order(order_no=no, customer_id=cust.id, status=status, carrier="顺丰",
                      tracking_no="SF123", created_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
            s.add(o)
            await s.flush()
            s.add(OrderLine(order_id=o.id, product_id=p.id, quantity=3, unit_price=Decimal("9")))


async def test_missing_or_wrong_token_is_refused(client: TestClient) -> None:
    assert (await client.post("/webhook", json=call("action_order_status"))).status == 401
    resp = await client.post("/webhook?token=nope", json=call("action_order_status"))
    assert resp.status == 401


async def test_unknown_action_is_404_and_malformed_is_400(client: TestClient) -> None:
    resp = await client.post(f"/webhook?token={TOKEN}", json=call("action_nope"))
    assert resp.status == 404
    resp = await client.post(f"/webhook?token={TOKEN}", data=b"{not json")
    assert resp.status == 400


async def test_order_status_reads_the_database(client: TestClient, db: Database) -> None:
    await seed(db)
    resp = await client.post(f"/webhook?token={TOKEN}", json=call(
        "action_order_status", text="so20261101 0001 到哪了"))
    body = await resp.json()
    custom = body["responses"][0]["custom"]
    assert custom["template"] == "order_status"
    assert custom["vars"]["order_no"] == "SO20261101-0001"
    assert custom["vars"]["tracking_no"] == "SF123"
    assert custom["vars"]["items"][0]["name_zh"] == "冰红茶"


async def test_other_customers_order_is_not_found(client: TestClient, db: Database) -> None:
    await seed(db)
    resp = await client.post(f"/webhook?token={TOKEN}", json=call(
        "action_order_status", entities=[{"entity": "order_id", "value": "SO20261101-0002"}]))
    custom = (await resp.json())["responses"][0]["custom"]
    assert custom["template"] == "order_not_found"
    assert "status" not in custom["vars"]


async def test_database_down_gives_an_apology_with_handoff(db: Database) -> None:
    broken = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    settings = load_settings(env={"IDENTITY_SIGNING_KEY": SIGNING_KEY})
    app = create_app(ActionContext(db=broken, settings=settings), TOKEN)
    async with TestClient(TestServer(app)) as c:
        resp = await c.post(f"/webhook?token={TOKEN}", json=call("action_order_status"))
        body = await resp.json()
    await broken.dispose()
    assert resp.status == 200
    custom = body["responses"][0]["custom"]
    assert custom["template"] == "error_unavailable"
    assert custom["buttons"][0]["payload"] == "/human_handoff"


async def test_stock_question_before_any_import_says_so(client: TestClient) -> None:
    resp = await client.post(f"/webhook?token={TOKEN}", json=call(
        "action_stock_query", text="冰红茶还有货吗", entities=[{"entity": "product",
                                                            "value": "冰红茶"}]))
    custom = (await resp.json())["responses"][0]["custom"]
    assert custom["template"] == "catalogue_empty"


async def test_sql_in_a_product_mention_is_just_text(client: TestClient, db: Database) -> None:
    await seed(db)
    resp = await client.post(f"/webhook?token={TOKEN}", json=call(
        "action_stock_query", text="'; DROP TABLE products; --"))
    custom = (await resp.json())["responses"][0]["custom"]
    assert custom["template"] == "product_not_found"
    async with db.transaction() as s:
        assert (await s.scalars(select(Product.sku))).all() == ["BV-1"]


async def test_banded_stock_answer_hides_quantities(db: Database) -> None:
    from core.models import StockLevel, Warehouse
    from core.settings import StockSection

    await seed(db)
    async with db.transaction() as s:
        w = Warehouse(code="上海仓")
        s.add(w)
        await s.flush()
        pid = (await s.scalars(select(Product.id))).one()
        s.add(StockLevel(product_id=pid, warehouse_id=w.id, quantity=30))
    settings = load_settings(env={"IDENTITY_SIGNING_KEY": SIGNING_KEY}).model_copy(
        update={"stock": StockSection(low_threshold=50, show_quantities=False)})
    app = create_app(ActionContext(db=db, settings=settings), TOKEN)
    async with TestClient(TestServer(app)) as c:
        resp = await c.post(f"/webhook?token={TOKEN}", json=call(
            "action_stock_query", text="BV-1 有货吗"))
        custom = (await resp.json())["responses"][0]["custom"]
    assert custom["vars"]["status"] == "low"
    assert custom["vars"]["show_quantities"] is False
    from core.i18n import renderer

    text = renderer().render("stock_answer", "zh-Hans", **custom["vars"])
    assert "库存紧张" in text and "30" not in text


@pytest.mark.parametrize("case", ["no proof", "wrong key", "another sender's proof", "expired"])
async def test_an_unproven_sender_sees_no_account_data(client: TestClient, db: Database,
                                                       case: str) -> None:
    """Posting to Rasa as a victim's Telegram id gets nothing: actions want the gateway's proof."""
    await seed(db)
    metadata = {
        "no proof": {"locale": "zh-Hans"},
        "wrong key": {identity.METADATA_KEY: identity.sign("guessed-key", "77")},
        "another sender's proof": {identity.METADATA_KEY: identity.sign(SIGNING_KEY, "78")},
        "expired": {identity.METADATA_KEY: identity.sign(SIGNING_KEY, "77", now=1_000_000)},
    }[case]
    resp = await client.post(f"/webhook?token={TOKEN}", json=call(
        "action_order_status", text="so20261101 0001 到哪了", metadata=metadata))
    body = await resp.json()
    assert [r["custom"]["template"] for r in body["responses"]] == ["link_required"]
    assert "SO20261101" not in str(body)
    resp = await client.post(f"/webhook?token={TOKEN}", json=call(
        "action_promotion_query", metadata=metadata))
    assert (await resp.json())["responses"][0]["custom"]["vars"]["linked"] is False
