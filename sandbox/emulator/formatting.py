"""Telegram text formatting: parse modes to (text, entities), UTF-16 offsets, auto-entities."""

from __future__ import annotations

import re
from html import escape as html_escape
from typing import Any

Entity = dict[str, Any]

# Telegram's HTML subset: tag name -> entity type ("" = handled specially).
_HTML_TAGS: dict[str, str] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{1,10});")
_SAFE_URL_RE = re.compile(r"^(?:https?|tg|ftp|mailto)://?", re.IGNORECASE)
_BARE_DOMAIN_RE = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(/.*)?$")
_MENTION_USER_RE = re.compile(r"^tg://user\?id=(\d+)$")


class EntityParseError(ValueError):
    """Raised with Telegram's wording when formatted text can't be parsed."""


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit Telegram uses for entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(source: str, index: int) -> int:
    """UTF-8 byte offset of ``index``; Telegram's error messages count bytes."""
    return len(source[:index].encode("utf-8"))


def _decode_entity(source: str, i: int) -> tuple[str, int] | None:
    """Decode an HTML entity at ``source[i]`` (which is '&'); None means keep the '&' literally."""
    m = _ENTITY_RE.match(source, i)
    if not m:
        return None
    name = m.group(1)
    if name.startswith("#"):
        code = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
        if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        return chr(code), m.end()
    if name in _NAMED_ENTITIES:
        return _NAMED_ENTITIES[name], m.end()
    # Telegram only knows four named entities; others are left as literal text.
    return None


def _link_entity(href: str) -> Entity | None:
    """Entity for <a href>; Telegram silently drops links with unusable URLs."""
    href = href.strip()
    mention = _MENTION_USER_RE.match(href)
    if mention:
        user = {"id": int(mention.group(1)), "is_bot": False, "first_name": ""}
        return {"type": "text_mention", "user": user}
    if _SAFE_URL_RE.match(href):
        return {"type": "text_link", "url": href}
    if _BARE_DOMAIN_RE.match(href):
        return {"type": "text_link", "url": "http://" + href}
    return None


def _parse_attributes(source: str, i: int, tag_offset: int) -> tuple[dict[str, str], int]:
    """Parse tag attributes starting at ``i``; returns them and the index after '>'."""
    attrs: dict[str, str] = {}
    n = len(source)
    while True:
        while i < n and source[i].isspace():
            i += 1
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {tag_offset}")
        if source[i] == ">":
            return attrs, i + 1
        start = i
        while i < n and not source[i].isspace() and source[i] not in "=>":
            i += 1
        name = source[start:i].lower()
        while i < n and source[i].isspace():
            i += 1
        value = ""
        if i < n and source[i] == "=":
            i += 1
            while i < n and source[i].isspace():
                i += 1
            if i >= n:
                raise EntityParseError(f"Unclosed start tag at byte offset {tag_offset}")
            if source[i] in "\"'":
                quote = source[i]
                end = source.find(quote, i + 1)
                if end < 0:
                    raise EntityParseError(
                        f"Unclosed start tag at byte offset {tag_offset}"
                    )
                raw, i = source[i + 1 : end], end + 1
            else:
                start = i
                while i < n and not source[i].isspace() and source[i] != ">":
                    i += 1
                raw = source[start:i]
            value = _decode_text(raw)
        if name:
            attrs[name] = value


def _decode_text(raw: str) -> str:
    """Decode the HTML entities Telegram understands inside attribute values."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] == "&":
            decoded = _decode_entity(raw, i)
            if decoded:
                out.append(decoded[0])
                i = decoded[1]
                continue
        out.append(raw[i])
        i += 1
    return "".join(out)


def parse_html(source: str) -> tuple[str, list[Entity]]:
    """Parse Telegram-flavoured HTML into plain text and entities, raising like Telegram does."""
    out: list[str] = []
    pos16 = 0  # UTF-16 length of everything appended to ``out`` so far
    stack: list[dict[str, Any]] = []
    entities: list[Entity] = []
    i, n = 0, len(source)

    def emit(chunk: str) -> None:
        nonlocal pos16
        out.append(chunk)
        pos16 += utf16_len(chunk)

    while i < n:
        ch = source[i]
        if ch == "&":
            decoded = _decode_entity(source, i)
            if decoded:
                emit(decoded[0])
                i = decoded[1]
            else:
                emit("&")
                i += 1
            continue
        if ch != "<":
            j = i
            while j < n and source[j] not in "<&":
                j += 1
            emit(source[i:j])
            i = j
            continue

        tag_offset = _byte_offset(source, i)
        i += 1
        is_end = i < n and source[i] == "/"
        if is_end:
            i += 1
        start = i
        while i < n and not source[i].isspace() and source[i] != ">":
            i += 1
        if i >= n:
            kind = "end" if is_end else "start"
            raise EntityParseError(f"Unclosed {kind} tag at byte offset {tag_offset}")
        tag = source[start:i].lower()
        if not tag:
            raise EntityParseError(f"Empty tag name at byte offset {tag_offset}")

        if is_end:
            while i < n and source[i].isspace():
                i += 1
            if i >= n or source[i] != ">":
                raise EntityParseError(f"Unclosed end tag at byte offset {tag_offset}")
            i += 1
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {tag_offset}")
            top = stack.pop()
            if top["tag"] != tag:
                raise EntityParseError(
                    f'Unmatched end tag at byte offset {tag_offset}, expected "</{top["tag"]}>", '
                    f'found "</{tag}>"'
                )
            _close_tag(top, pos16, stack, entities)
            continue

        if tag not in _HTML_TAGS:
            raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {tag_offset}')
        attrs, i = _parse_attributes(source, i, tag_offset)
        if tag == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {tag_offset}'
            )
        if tag == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise EntityParseError(f"Custom emoji entity must have a valid emoji-id at byte "
                                   f"offset {tag_offset}")
        stack.append({"tag": tag, "attrs": attrs, "start": pos16})

    if stack:
        raise EntityParseError(
            f'Can\'t find end tag corresponding to start tag "{stack[-1]["tag"]}"'
        )
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _close_tag(
    top: dict[str, Any], pos16: int, stack: list[dict[str, Any]], entities: list[Entity]
) -> None:
    """Turn a closed tag into an entity (or merge <code class=language-x> into its <pre>)."""
    tag, attrs, start = top["tag"], top["attrs"], top["start"]
    length = pos16 - start
    language = attrs.get("class", "")
    if tag == "code" and stack and stack[-1]["tag"] == "pre" and language.startswith("language-"):
        # <pre><code class="language-x"> is one pre entity with a language, as in Telegram.
        stack[-1]["language"] = language[len("language-") :]
        return
    if length <= 0:
        return  # Telegram drops empty entities
    entity: Entity | None
    if tag == "a":
        entity = _link_entity(attrs.get("href", ""))
    elif tag == "pre":
        entity = {"type": "pre"}
        if top.get("language"):
            entity["language"] = top["language"]
    elif tag == "blockquote":
        is_expandable = "expandable" in attrs
        entity = {"type": "expandable_blockquote" if is_expandable else "blockquote"}
    elif tag == "tg-emoji":
        entity = {"type": "custom_emoji", "custom_emoji_id": attrs["emoji-id"]}
    else:
        entity = {"type": _HTML_TAGS[tag]}
    if entity is not None:
        entity.update(offset=start, length=length)
        entities.append(entity)


# --- MarkdownV2 -------------------------------------------------------------------------------

_MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
}


def parse_markdown_v2(source: str) -> tuple[str, list[Entity]]:
    """Parse MarkdownV2 into text and entities; unescaped reserved characters are errors."""
    out: list[str] = []
    pos16 = 0
    stack: list[dict[str, Any]] = []
    entities: list[Entity] = []
    i, n = 0, len(source)
    quote_start: int | None = None

    def emit(chunk: str) -> None:
        nonlocal pos16
        out.append(chunk)
        pos16 += utf16_len(chunk)

    def at_line_start(k: int) -> bool:
        return k == 0 or source[k - 1] == "\n"

    while i < n:
        ch = source[i]
        in_code = bool(stack) and stack[-1]["type"] in ("code", "pre")
        if at_line_start(i) and not in_code:
            if ch == ">" and quote_start is None:
                quote_start = pos16
                i += 1
                continue
            if ch == ">":
                i += 1
                continue
            if quote_start is not None:
                # the quote ended on the previous line; strip the trailing newline from it
                _append_quote(entities, quote_start, pos16 - 1)
                quote_start = None
        if ch == "\\" and i + 1 < n and 0 < ord(source[i + 1]) <= 126:
            emit(source[i + 1])
            i += 2
            continue
        if in_code:
            closing = "```" if stack[-1]["type"] == "pre" else "`"
            if source.startswith(closing, i):
                top = stack.pop()
                _add_md_entity(entities, top, pos16)
                i += len(closing)
            else:
                emit(ch)
                i += 1
            continue
        if ch == "`":
            if source.startswith("```", i):
                i += 3
                language = ""
                newline = source.find("\n", i)
                if newline >= 0 and source[i:newline].strip() and " " not in source[i:newline]:
                    language, i = source[i:newline], newline + 1
                elif newline == i:
                    i += 1
                stack.append({"type": "pre", "start": pos16, "language": language,
                              "byte": _byte_offset(source, i)})
            else:
                stack.append({"type": "code", "start": pos16, "byte": _byte_offset(source, i)})
                i += 1
            continue
        kind, width = _md_marker(source, i)
        if kind == "text_link_open":
            stack.append({"type": "text_link", "start": pos16, "byte": _byte_offset(source, i)})
            i += 1
            continue
        if kind == "text_link_close":
            if not stack or stack[-1]["type"] != "text_link":
                raise EntityParseError(_reserved_message(ch))
            if i + 1 >= n or source[i + 1] != "(":
                top = stack.pop()  # "[text]" without a URL is plain text in Telegram
                i += 1
                continue
            end = source.find(")", i + 2)
            if end < 0:
                raise EntityParseError(
                    f"Can't find end of a url at byte offset {_byte_offset(source, i + 1)}"
                )
            url = source[i + 2 : end].replace("\\)", ")").replace("\\\\", "\\")
            top = stack.pop()
            top["url"] = url
            _add_md_entity(entities, top, pos16)
            i = end + 1
            continue
        if kind:
            if stack and stack[-1]["type"] == kind:
                _add_md_entity(entities, stack.pop(), pos16)
            else:
                stack.append({"type": kind, "start": pos16, "byte": _byte_offset(source, i)})
            i += width
            continue
        if ch in _MDV2_RESERVED:
            raise EntityParseError(_reserved_message(ch))
        emit(ch)
        i += 1

    if quote_start is not None:
        _append_quote(entities, quote_start, pos16)
    if stack:
        top = stack[-1]
        name = _MDV2_NAMES.get(top["type"], top["type"])
        raise EntityParseError(f"Can't find end of {name} entity at byte offset {top['byte']}")
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _reserved_message(ch: str) -> str:
    """Telegram's wording for an unescaped reserved MarkdownV2 character."""
    return f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"


def _md_marker(source: str, i: int) -> tuple[str, int]:
    """Classify a MarkdownV2 markup character at ``i``: (entity type or '', width)."""
    ch = source[i]
    if ch == "*":
        return "bold", 1
    if ch == "_":
        return ("underline", 2) if source.startswith("__", i) else ("italic", 1)
    if ch == "~":
        return "strikethrough", 1
    if ch == "|" and source.startswith("||", i):
        return "spoiler", 2
    if ch == "[":
        return "text_link_open", 1
    if ch == "]":
        return "text_link_close", 1
    return "", 0


def _add_md_entity(entities: list[Entity], top: dict[str, Any], end16: int) -> None:
    """Append a closed MarkdownV2 entity unless it is empty."""
    length = end16 - top["start"]
    if length <= 0:
        return
    entity: Entity = {"type": top["type"], "offset": top["start"], "length": length}
    if top["type"] == "pre" and top.get("language"):
        entity["language"] = top["language"]
    if top["type"] == "text_link":
        link = _link_entity(top.get("url", ""))
        if link is None:
            return
        entity.update(link)
    entities.append(entity)


def _append_quote(entities: list[Entity], start: int, end: int) -> None:
    """Append a blockquote entity for a run of '>' lines."""
    if end > start:
        entities.append({"type": "blockquote", "offset": start, "length": end - start})


# --- legacy Markdown ----------------------------------------------------------------------

_LEGACY_MARKERS = {"*": "bold", "_": "italic", "`": "code"}


def parse_markdown(source: str) -> tuple[str, list[Entity]]:
    """Parse legacy Markdown (*bold*, _italic_, `code`, ```pre```, [text](url))."""
    out: list[str] = []
    pos16 = 0
    entities: list[Entity] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "\\" and i + 1 < n and source[i + 1] in "_*`[":
            out.append(source[i + 1])
            pos16 += 1
            i += 2
            continue
        if source.startswith("```", i):
            end = source.find("```", i + 3)
            if end < 0:
                raise EntityParseError(_legacy_unclosed(source, i))
            body = source[i + 3 : end]
            language = ""
            if "\n" in body and body.split("\n", 1)[0].strip():
                language, body = body.split("\n", 1)
            entities.append({"type": "pre", "offset": pos16, "length": utf16_len(body)})
            if language:
                entities[-1]["language"] = language
            out.append(body)
            pos16 += utf16_len(body)
            i = end + 3
            continue
        if ch in _LEGACY_MARKERS:
            end = source.find(ch, i + 1)
            if end < 0:
                raise EntityParseError(_legacy_unclosed(source, i))
            body = source[i + 1 : end]
            if body:
                entities.append(
                    {"type": _LEGACY_MARKERS[ch], "offset": pos16, "length": utf16_len(body)}
                )
            out.append(body)
            pos16 += utf16_len(body)
            i = end + 1
            continue
        if ch == "[":
            close = source.find("](", i + 1)
            end = source.find(")", close + 2) if close >= 0 else -1
            if close < 0 or end < 0:
                raise EntityParseError(_legacy_unclosed(source, i))
            body = source[i + 1 : close]
            link = _link_entity(source[close + 2 : end])
            if link and body:
                link.update(offset=pos16, length=utf16_len(body))
                entities.append(link)
            out.append(body)
            pos16 += utf16_len(body)
            i = end + 1
            continue
        out.append(ch)
        pos16 += utf16_len(ch)
        i += 1
    return "".join(out), entities


def _legacy_unclosed(source: str, i: int) -> str:
    """Telegram's wording for an unterminated legacy Markdown entity."""
    return f"Can't find end of the entity starting at byte offset {_byte_offset(source, i)}"


# --- shared ---------------------------------------------------------------------------------


def parse_text(text: str, parse_mode: str | None) -> tuple[str, list[Entity]]:
    """Parse ``text`` with a Bot API parse_mode (None/'' = plain text)."""
    mode = (parse_mode or "").strip()
    if not mode:
        return text, []
    lowered = mode.lower()
    if lowered == "html":
        return parse_html(text)
    if lowered == "markdownv2":
        return parse_markdown_v2(text)
    if lowered == "markdown":
        return parse_markdown(text)
    raise ValueError(f"Unsupported parse mode {mode!r}")


def strip_text(text: str, entities: list[Entity]) -> tuple[str, list[Entity]]:
    """Trim surrounding whitespace like Telegram does and shift/clip entities to match."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead16 = utf16_len(text[: len(text) - len(text.lstrip())])
    total16 = utf16_len(stripped)
    result: list[Entity] = []
    for entity in entities:
        start = max(entity["offset"] - lead16, 0)
        end = min(entity["offset"] + entity["length"] - lead16, total16)
        if end > start:
            result.append({**entity, "offset": start, "length": end - start})
    return stripped, result


_AUTO_ENTITY_RES: list[tuple[str, re.Pattern[str]]] = [
    ("bot_command", re.compile(r"(?<![^\s])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![\w@/])")),
    ("url", re.compile(r"\bhttps?://[^\s<>\"]+[^\s<>\".,;:!?)\]]")),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}\b")),
    ("hashtag", re.compile(r"(?<![\w#])#\w*[^\W\d]\w*")),
]


def auto_entities(text: str) -> list[Entity]:
    """Entities Telegram detects in any text: bot commands, URLs, @mentions, #hashtags."""
    found: list[Entity] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in _AUTO_ENTITY_RES:
        for m in pattern.finditer(text):
            if any(m.start() < end and start < m.end() for start, end in taken):
                continue
            taken.append((m.start(), m.end()))
            found.append(
                {"type": kind, "offset": utf16_len(text[: m.start()]),
                 "length": utf16_len(m.group(0))}
            )
    found.sort(key=lambda e: e["offset"])
    return found


# --- safe rendering for the chat page ---------------------------------------------------------

_RENDER_TAGS = {
    "bold": "b",
    "italic": "i",
    "underline": "u",
    "strikethrough": "s",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "expandable_blockquote": "blockquote",
}
_RENDER_URL_RE = re.compile(r"^(?:https?|tg|mailto):", re.IGNORECASE)


def entities_to_html(text: str, entities: list[Entity] | None) -> str:
    """Render text + entities as HTML for the sandbox page: every character of the text is
    escaped and only a fixed set of tags (with safe link schemes) is emitted."""
    units = text.encode("utf-16-le")

    def piece(start: int, end: int) -> str:
        return html_escape(units[2 * start : 2 * end].decode("utf-16-le", errors="replace"))

    ordered = sorted(
        (e for e in entities or [] if isinstance(e.get("offset"), int)
         and isinstance(e.get("length"), int) and e["length"] > 0),
        key=lambda e: (e["offset"], -e["length"]),
    )
    return _render_range(ordered, piece, 0, len(units) // 2)


def _render_range(entities: list[Entity], piece: Any, start: int, end: int) -> str:
    """Render [start, end) with the (sorted, nested) entities that begin inside it."""
    out: list[str] = []
    pos, i = start, 0
    inside = [e for e in entities if start <= e["offset"] < end]
    while i < len(inside):
        entity = inside[i]
        e_start, e_end = entity["offset"], min(entity["offset"] + entity["length"], end)
        if e_start < pos:  # overlapping rather than nested: Telegram forbids it, skip
            i += 1
            continue
        out.append(piece(pos, e_start))
        j = i + 1
        while j < len(inside) and inside[j]["offset"] < e_end:
            j += 1
        body = _render_range(inside[i + 1 : j], piece, e_start, e_end)
        out.append(_wrap(entity, body))
        pos, i = e_end, j
    out.append(piece(pos, end))
    return "".join(out)


def _wrap(entity: Entity, body: str) -> str:
    """Wrap already-escaped ``body`` in the tag for ``entity`` (or nothing)."""
    kind = entity.get("type")
    if kind == "text_link":
        url = str(entity.get("url", ""))
        if _RENDER_URL_RE.match(url):
            href = html_escape(url)
            return f'<a href="{href}" rel="noopener noreferrer" target="_blank">{body}</a>'
        return body
    if kind == "spoiler":
        return f'<span class="spoiler">{body}</span>'
    tag = _RENDER_TAGS.get(str(kind))
    return f"<{tag}>{body}</{tag}>" if tag else body
