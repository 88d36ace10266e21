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


# Traditional conventions: OpenCC config for each (app.traditional_convention).
CONVENTIONS = {"tw": "s2tw", "hk": "s2hk"}
# OpenCC's character-standard forms that shops, brands and menus in Taiwan and Hong Kong do
# not use: s2t/s2hk write 紅燒牛肉麪 and 雪峯. Product and brand names must not come out in
# such a variant, so both conventions end with the form in everyday use.
_USUAL_FORMS = str.maketrans({"麪": "麵", "峯": "峰"})
# 面 after a food word is a noodle (麵), which OpenCC only knows for some phrases
# (拌面 → 拌麵, but 鸡面 → 雞面, 板面 → 板面).
_NOODLE = re.compile(r"(?<=[雞鴨魚蝦肉菜湯板絲蛋醬])面")
# Cantonese characters that OpenCC t2s turns into rare forms outside everyday fonts and
# outside the BMP (餸 → 𩠌, 嗰 → 𠮶, 喎 → 㖞); kept as typed, which is also how the
# Cantonese training data is written.
_KEEP_CANTONESE = str.maketrans({"𩠌": "餸", "𠮶": "嗰", "㖞": "喎"})


@lru_cache(maxsize=4)
def _s2convention(convention: str) -> OpenCC:
    if convention not in CONVENTIONS:
        raise ValueError(
            f"app.traditional_convention must be one of {sorted(CONVENTIONS)}, not {convention!r}")
    return OpenCC(CONVENTIONS[convention])


def to_simplified(text: str) -> str:
    """Convert Traditional Chinese characters to Simplified; other text is unchanged."""
    if not _CJK.search(text):
        return text
    return _t2s().convert(text).translate(_KEEP_CANTONESE)


def to_traditional(text: str, convention: str | None = None) -> str:
    """Convert Simplified Chinese to Traditional; other text is unchanged.

    Without a convention: OpenCC's generic s2t (as before). With "tw" or "hk": that
    region's usage, and the everyday form of a few characters in names (麵, 峰)."""
    if not _CJK.search(text):
        return text
    if convention is None:
        return _s2t().convert(text)
    converted = _s2convention(convention).convert(text).translate(_USUAL_FORMS)
    return _NOODLE.sub("麵", converted)


def detect_script(text: str) -> str | None:
    """Guess the locale a message is written in, or None when it carries no signal.

    Chinese that is written the same in both scripts (你好, 好的, 可以) is no signal:
    returning a script for it would flip a Traditional user's replies to Simplified."""
    if _CJK.search(text):
        if to_simplified(text) != text:
            return "zh-Hant"
        if _s2t().convert(text) != text:
            return "zh-Hans"
        return None
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


def configured_convention() -> str:
    """app.traditional_convention from the settings (tw when unset)."""
    from core.settings import load_settings

    return load_settings().app.traditional_convention or "tw"


class Renderer:
    """Renders a template key in a locale; zh-Hant falls back to converted zh-Hans, then en."""

    def __init__(self, directory: Path = LOCALES_DIR, convention: str | None = None) -> None:
        # Traditional output follows one convention (Taiwan or Hong Kong): variables from
        # the data (stored in Simplified) and zh-Hans fallbacks are converted with it.
        self.convention = convention or configured_convention()
        _s2convention(self.convention)  # fail at start-up on an unknown convention
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
                variables = _traditional_vars(variables, self.convention)
            text = template.render(locale=locale, **variables).strip()
            if locale == "zh-Hant" and loc == "zh-Hans":
                text = to_traditional(text, self.convention)
            return text
        raise TemplateNotFound(key)


def _traditional_vars(value: Any, convention: str) -> Any:
    if isinstance(value, str):
        return to_traditional(value, convention)
    if isinstance(value, dict):
        return {k: _traditional_vars(v, convention) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_traditional_vars(v, convention) for v in value]
    return value


@lru_cache(maxsize=1)
def renderer() -> Renderer:
    """The process-wide renderer (templates are read once)."""
    return Renderer()
