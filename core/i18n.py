"""Locales, script detection, Traditional/Simplified conversion and template rendering."""

from __future__ import annotations

import re
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import BaseLoader, Environment, StrictUndefined, TemplateNotFound
from opencc import OpenCC

LOCALES = ("zh-Hans", "zh-Hant", "en")
LOCALES_DIR = Path(__file__).resolve().parent / "locales"
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# A Latin word that is not part of an SKU or order number (SO2026…, BV-4001).
_LATIN_WORD = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2,}(?![A-Za-z0-9-])")


@lru_cache(maxsize=1)
def _t2s() -> OpenCC:
    return OpenCC("t2s")


@lru_cache(maxsize=1)
def _s2t() -> OpenCC:
    return OpenCC("s2t")


def to_simplified(text: str) -> str:
    """Convert Traditional Chinese characters to Simplified; other text is unchanged."""
    return _t2s().convert(text) if _CJK.search(text) else text


def to_traditional(text: str) -> str:
    """Convert Simplified Chinese characters to Traditional; other text is unchanged."""
    return _s2t().convert(text) if _CJK.search(text) else text


def detect_script(text: str) -> str | None:
    """Guess the locale a message is written in, or None when it carries no signal."""
    if _CJK.search(text):
        return "zh-Hant" if to_simplified(text) != text else "zh-Hans"
    if _LATIN_WORD.search(text):
        return "en"
    return None


def locale_from_language_code(code: str | None) -> str | None:
    """Map a Telegram language_code (zh-hans, zh-TW, en-US …) to one of our locales."""
    if not code:
        return None
    code = code.lower().replace("_", "-")
    if code.startswith("zh"):
        return "zh-Hant" if any(t in code for t in ("hant", "tw", "hk", "mo")) else "zh-Hans"
    if code.startswith("en"):
        return "en"
    return None


def normalize_locale(value: str | None) -> str | None:
    """Accept loose spellings (zh, zh_CN, traditional, 繁體) and return a locale or None."""
    if not value:
        return None
    v = value.strip().lower().replace("_", "-")
    table = {
        "zh-hans": "zh-Hans", "zh": "zh-Hans", "zh-cn": "zh-Hans", "cn": "zh-Hans",
        "simplified": "zh-Hans", "简体": "zh-Hans", "简体中文": "zh-Hans", "簡體": "zh-Hans",
        "zh-hant": "zh-Hant", "zh-tw": "zh-Hant", "zh-hk": "zh-Hant", "tw": "zh-Hant",
        "traditional": "zh-Hant", "繁体": "zh-Hant", "繁體": "zh-Hant", "繁體中文": "zh-Hant",
        "en": "en", "english": "en", "英文": "en", "英语": "en", "英語": "en",
    }
    return table.get(v)


class _LocaleLoader(BaseLoader):
    """Loads templates from core/locales/<locale>/*.yml (flat key → jinja2 text)."""

    def __init__(self, locale: str, directory: Path) -> None:
        self.locale = locale
        self.directory = directory

    @cache  # noqa: B019 - one loader per locale, lives as long as the process
    def mapping(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        folder = self.directory / self.locale
        for path in sorted(folder.glob("*.yml")):
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(data, dict):
                raise ValueError(f"{path} must be a mapping of template key to text")
            merged.update({str(k): str(v) for k, v in data.items()})
        return merged

    def get_source(self, environment: Environment, template: str) -> tuple[str, None, Any]:
        source = self.mapping().get(template)
        if source is None:
            raise TemplateNotFound(template)
        return source, None, lambda: True


class Renderer:
    """Renders a template key in a locale; zh-Hant falls back to converted zh-Hans, then en."""

    def __init__(self, directory: Path = LOCALES_DIR) -> None:
        self.envs = {
            loc: Environment(
                loader=_LocaleLoader(loc, directory),
                autoescape=True,
                undefined=StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
                keep_trailing_newline=False,
            )
            for loc in LOCALES
        }
        for env in self.envs.values():
            env.filters["money"] = lambda v: f"{v:,.2f}"

    def has(self, key: str, locale: str) -> bool:
        """True if the locale (or its fallback chain) defines the key."""
        return any(key in self.envs[loc].loader.mapping() for loc in self._chain(locale))  # type: ignore[union-attr]

    @staticmethod
    def _chain(locale: str) -> list[str]:
        if locale == "zh-Hant":
            return ["zh-Hant", "zh-Hans", "en"]
        if locale == "zh-Hans":
            return ["zh-Hans", "en"]
        return ["en", "zh-Hans"]

    def render(self, key: str, locale: str, **variables: Any) -> str:
        """Render `key` for `locale`; raises TemplateNotFound if no locale defines it."""
        locale = locale if locale in LOCALES else "zh-Hans"
        for loc in self._chain(locale):
            try:
                template = self.envs[loc].get_template(key)
            except TemplateNotFound:
                continue
            if locale == "zh-Hant":  # names from the data are stored in Simplified
                variables = _traditional_vars(variables)
            text = template.render(locale=locale, **variables).strip()
            if locale == "zh-Hant" and loc == "zh-Hans":
                text = to_traditional(text)
            return text
        raise TemplateNotFound(key)


def _traditional_vars(value: Any) -> Any:
    if isinstance(value, str):
        return to_traditional(value)
    if isinstance(value, dict):
        return {k: _traditional_vars(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_traditional_vars(v) for v in value]
    return value


@lru_cache(maxsize=1)
def renderer() -> Renderer:
    """The process-wide renderer (templates are read once)."""
    return Renderer()
