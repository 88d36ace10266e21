"""Rendering Rasa's replies into Telegram messages."""

from bot.gateway.render import CallbackStore, from_rasa, split_text


def test_custom_payload_renders_template_with_buttons() -> None:
    store = CallbackStore()
    out = from_rasa([{"custom": {"template": "order_pick", "vars": {"count": 2}, "buttons": [
        {"label": "SO20261115-0001", "payload": '/order_status{"order_id":"SO20261115-0001"}'},
        {"label_key": "button_human", "payload": "/human_handoff"},
    ]}}], "en", store)
    assert len(out) == 1
    assert "2 open orders" in out[0].text
    rows = out[0].keyboard.inline_keyboard
    assert rows[0][0].text == "SO20261115-0001"
    assert rows[0][0].callback_data == '/order_status{"order_id":"SO20261115-0001"}'


def test_plain_text_from_rasa_is_escaped() -> None:
    out = from_rasa([{"text": "<b>x</b> & y"}], "en", CallbackStore())
    assert out[0].text == "&lt;b&gt;x&lt;/b&gt; &amp; y"


def test_long_payloads_go_through_the_store() -> None:
    store = CallbackStore()
    payload = '/stock_query{"product":"' + "X" * 100 + '"}'
    data = store.encode(payload)
    assert len(data.encode()) <= 64
    assert store.decode(data) == payload
    assert store.decode("k:unknown") is None


def test_split_text_respects_the_limit() -> None:
    text = "\n".join(f"line {i} " + "字" * 50 for i in range(300))
    chunks = split_text(text)
    assert all(len(c) <= 4096 for c in chunks)
    assert "\n".join(chunks) == text
