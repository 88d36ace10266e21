"""Telegram text formatting: HTML/MarkdownV2 parsing, UTF-16 offsets, safe rendering."""

from __future__ import annotations

import pytest

from sandbox.emulator.formatting import (
    EntityParseError,
    auto_entities,
    entities_to_html,
    parse_html,
    parse_markdown_v2,
    strip_text,
)


def test_html_nested_entities_and_named_entities() -> None:
    text, entities = parse_html('<b>Bold <i>both</i></b> &lt;tag&gt; &amp; &quot;q&quot;')
    assert text == 'Bold both <tag> & "q"'
    assert entities == [
        {"type": "bold", "offset": 0, "length": 9},
        {"type": "italic", "offset": 5, "length": 4},
    ]


def test_html_every_supported_tag() -> None:
    source = (
        "<b>a</b><strong>b</strong><i>c</i><em>d</em><u>e</u><ins>f</ins><s>g</s>"
        "<strike>h</strike><del>i</del><tg-spoiler>j</tg-spoiler>"
        '<span class="tg-spoiler">k</span><a href="https://example.com/x?a=1&amp;b=2">l</a>'
        "<code>m</code><pre>n</pre><blockquote>o</blockquote>"
        '<pre><code class="language-python">p</code></pre>'
    )
    text, entities = parse_html(source)
    assert text == "abcdefghijklmnop"
    kinds = [e["type"] for e in entities]
    assert kinds == ["bold", "bold", "italic", "italic", "underline", "underline",
                     "strikethrough", "strikethrough", "strikethrough", "spoiler", "spoiler",
                     "text_link", "code", "pre", "blockquote", "pre"]
    assert entities[11]["url"] == "https://example.com/x?a=1&b=2"
    assert entities[-1] == {"type": "pre", "language": "python", "offset": 15, "length": 1}


def test_html_offsets_are_utf16_code_units() -> None:
    text, entities = parse_html("😀 <b>ok</b>")
    assert text == "😀 ok"
    # the emoji is two UTF-16 code units, so "ok" starts at 3, not 2
    assert entities == [{"type": "bold", "offset": 3, "length": 2}]


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("<b>open", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("line<br>break", 'Unsupported start tag "br" at byte offset 4'),
        ("<script>alert(1)</script>", 'Unsupported start tag "script" at byte offset 0'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("a < b", "Empty tag name at byte offset 2"),
        ("<b", "Unclosed start tag at byte offset 0"),
        ('<span class="x">y</span>', 'Tag "span" must have class "tg-spoiler"'),
        ("й<br>", 'Unsupported start tag "br" at byte offset 2'),  # offsets are UTF-8 bytes
    ],
)
def test_html_errors_use_telegram_wording(source: str, error: str) -> None:
    with pytest.raises(EntityParseError, match="^" + error.replace("(", r"\(")):
        parse_html(source)


def test_html_unknown_named_entity_stays_literal_and_bad_links_are_dropped() -> None:
    text, entities = parse_html('&nbsp; <a href="javascript:alert(1)">x</a>')
    assert text == "&nbsp; x"
    assert entities == []  # Telegram drops links it can't use, keeping the text


def test_markdown_v2_requires_escaping_reserved_characters() -> None:
    with pytest.raises(EntityParseError, match="Character '.' is reserved"):
        parse_markdown_v2("Price: 5.00")
    text, entities = parse_markdown_v2(r"*Price:* 5\.00 [shop](https://t.me/x) ||s||")
    assert text == "Price: 5.00 shop s"
    assert [e["type"] for e in entities] == ["bold", "text_link", "spoiler"]
    with pytest.raises(EntityParseError, match="Can't find end of Bold entity"):
        parse_markdown_v2("*never closed")


def test_strip_text_shifts_and_clips_entities() -> None:
    text, entities = strip_text("  hi there \n", [{"type": "bold", "offset": 0, "length": 4}])
    assert text == "hi there"
    assert entities == [{"type": "bold", "offset": 0, "length": 2}]


def test_auto_entities_detects_commands_urls_mentions() -> None:
    entities = auto_entities("/start@sandbox_bot see https://x.org and @rita_shop")
    assert [(e["type"], e["offset"], e["length"]) for e in entities] == [
        ("bot_command", 0, 18), ("url", 23, 13), ("mention", 41, 10)]


def test_rendering_escapes_text_and_keeps_only_safe_markup() -> None:
    html = entities_to_html(
        "<script>alert(1)</script> bold link",
        [{"type": "bold", "offset": 26, "length": 4},
         {"type": "text_link", "offset": 31, "length": 4, "url": "javascript:alert(1)"}],
    )
    assert html == "&lt;script&gt;alert(1)&lt;/script&gt; <b>bold</b> link"
    linked = entities_to_html('a"b', [{"type": "text_link", "offset": 0, "length": 3,
                                       "url": 'https://x.org/"onmouseover="x'}])
    assert 'href="https://x.org/&quot;onmouseover=&quot;x"' in linked
    assert "&quot;b</a>" in linked
