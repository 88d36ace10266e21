"""Markdown → Telegram HTML, for lesson texts, quiz intros and course descriptions.

Telegram's HTML knows a handful of tags; the output uses only <b>, <i>, <s>, <code>, <pre>,
<a href="http(s)://…"> and <blockquote>. Everything else is turned into plain text:

- headings become a bold line;
- bullet lists become "• " lines, numbered lists "1. " lines (nested lists indented);
- a fenced or indented code block becomes <pre>; `---` becomes a line of dashes;
- a link to anything but http(s) keeps only its text; an image keeps its alt text;
- a single line break stays a line break (as in chat, and no stray space between Chinese
  characters);
- raw HTML in the Markdown (<script>, <div> …) is shown as text, escaped — never passed on.

It walks markdown-it-py's syntax tree (CommonMark plus ~~strikethrough~~); every piece of
text is escaped on the way out, so what a trainer types can never become markup.
"""

from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

_MD = MarkdownIt("commonmark", {"html": False}).enable("strikethrough")
_INLINE_TAGS = {"strong": "b", "em": "i", "s": "s"}
_SAFE_HREF = re.compile(r"^https?://\S+$", re.IGNORECASE)
INDENT = "  "


def to_telegram_html(markdown: str) -> str:
    """The Markdown text as Telegram HTML (see the module doc); "" for blank input."""
    root = SyntaxTreeNode(_MD.parse(markdown or ""))
    return "\n\n".join(b for b in _blocks(root.children, 0, quoted=False) if b).strip()


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _blocks(nodes: list[SyntaxTreeNode], depth: int, *, quoted: bool) -> list[str]:
    out: list[str] = []
    for node in nodes:
        if node.type == "paragraph":
            out.append(_inline_of(node))
        elif node.type == "heading":
            out.append(f"<b>{_inline_of(node)}</b>")
        elif node.type in ("bullet_list", "ordered_list"):
            out.append(_list(node, depth, quoted=quoted))
        elif node.type == "blockquote":
            inner = "\n\n".join(_blocks(node.children, depth, quoted=True))
            # Telegram does not nest quotes: an inner quote is part of the outer one.
            out.append(inner if quoted else f"<blockquote>{inner}</blockquote>")
        elif node.type in ("code_block", "fence"):
            out.append(f"<pre>{_esc(node.content.rstrip(chr(10)))}</pre>")
        elif node.type == "hr":
            out.append("——————")
        elif node.content:  # html_block and anything newer: its source, as text
            out.append(_esc(node.content.strip()))
    return out


def _list(node: SyntaxTreeNode, depth: int, *, quoted: bool) -> str:
    start = int(str(node.attrs.get("start", 1))) if node.type == "ordered_list" else 1
    lines: list[str] = []
    for n, item in enumerate(node.children):
        marker = f"{start + n}. " if node.type == "ordered_list" else "• "
        first = True
        for child in item.children:
            if child.type in ("bullet_list", "ordered_list"):
                lines.append(_list(child, depth + 1, quoted=quoted))
                continue
            text = "\n".join(_blocks([child], depth + 1, quoted=quoted))
            lines.append(INDENT * depth + (marker if first else INDENT) + text)
            first = False
        if first:  # an empty item: "- "
            lines.append(INDENT * depth + marker.rstrip())
    return "\n".join(lines)


def _inline_of(block: SyntaxTreeNode) -> str:
    return "".join(_inline(child) for child in block.children[0].children) \
        if block.children else ""


def _inline(node: SyntaxTreeNode) -> str:
    kind = node.type
    if kind == "text":
        return _esc(node.content)
    if kind in ("softbreak", "hardbreak"):
        return "\n"
    if kind == "code_inline":
        return f"<code>{_esc(node.content)}</code>"
    inner = "".join(_inline(child) for child in node.children)
    if kind in _INLINE_TAGS:
        tag = _INLINE_TAGS[kind]
        return f"<{tag}>{inner}</{tag}>"
    if kind == "link":
        href = str(node.attrs.get("href", ""))
        if _SAFE_HREF.match(href):
            return f'<a href="{html.escape(href, quote=True)}">{inner}</a>'
        return inner
    if kind == "image":
        return inner or _esc(str(node.attrs.get("alt", "")))
    return inner or _esc(node.content)  # html_inline and the like: shown as text
