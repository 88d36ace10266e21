"""Rendering Rasa's replies into Telegram messages."""

from bot.gateway.render import CallbackKeys, from_rasa, split_text


def test_custom_payload_renders_template_with_buttons() -> None:
    out = from_rasa([{"custom": {"template": "order_pick", "vars": {"count": 2}, "buttons": [
        {"label": "SO20261115-0001", "payload": '/order_status{"order_id":"SO20261115-0001"}'},
        {"label_key": "button_human", "payload": "/human_handoff"},
    ]}}], "en")
    assert len(out) == 1
    assert "2 open orders" in out[0].text
    rows = out[0].keyboard.inline_keyboard
    assert rows[0][0].text == "SO20261115-0001"
    assert rows[0][0].callback_data == '/order_status{"order_id":"SO20261115-0001"}'


def test_plain_text_from_rasa_is_escaped() -> None:
    out = from_rasa([{"text": "<b>x</b> & y"}], "en")
    assert out[0].text == "&lt;b&gt;x&lt;/b&gt; &amp; y"


def test_long_payloads_get_a_short_key_to_store() -> None:
    store = CallbackKeys()
    payload = '/stock_query{"product":"' + "X" * 100 + '"}'
    data = store.encode(payload)
    assert len(data.encode()) <= 64 and data.startswith("k:")
    assert store.pending == {data: payload}
    assert store.encode(payload) == data  # the same payload, the same key on any gateway
    assert store.encode("/help") == "/help" and len(store.pending) == 1


def test_long_lines_are_not_cut_inside_an_entity() -> None:
    text = "a" * 4094 + "&amp;" + "b" * 10
    chunks = split_text(text)
    assert chunks[0] == "a" * 4094 and chunks[1].startswith("&amp;")


def test_split_text_respects_the_limit() -> None:
    text = "\n".join(f"line {i} " + "字" * 50 for i in range(300))
    chunks = split_text(text)
    assert all(len(c) <= 4096 for c in chunks)
    assert "\n".join(chunks) == text
