"""`python -m community …`: register, configure, announce (empty segment refused), export."""

from __future__ import annotations

from pathlib import Path

import pytest

from community.__main__ import parser, run
from core.db import Database
from core.migrate import upgrade
from core.settings import load_settings


async def _cli(settings, *argv: str) -> int:  # type: ignore[no-untyped-def]
    return await run(settings, parser().parse_args(list(argv)))


async def test_cli_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings(env={"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"})
    db = Database(settings.resolved_database_url())
    await upgrade(db.engine)
    await db.dispose()
    assert await _cli(settings, "group", "register", "--chat-id", "-100800", "--title", "East",
                      "--tiers", "key,potential", "--regions", "华东", "--lang", "zh-Hant") == 0
    assert await _cli(settings, "group", "set", "--chat-id", "-100800", "--rules", "be nice",
                      "--blocklist-add", "假货,廣告", "--flood", "5/10") == 0
    assert await _cli(settings, "group", "register", "--chat-id", "-100801",
                      "--tiers", "gold") == 1  # bad tier refused
    assert await _cli(settings, "announce", "--regions", "西北", "--text", "x") == 1
    assert "matches no group" in capsys.readouterr().err
    assert await _cli(settings, "announce", "--tiers", "key", "--text", "hi", "--pin",
                      "--at", "2026-12-01T09:00", "--key", "k1") == 0
    assert "1 group(s): East" in capsys.readouterr().out
    assert await _cli(settings, "group", "list") == 0
    listed = capsys.readouterr().out
    assert "-100800\tEast\ttiers=key,potential\tregions=华东\tzh-Hant" in listed
    out = tmp_path / "activity.csv"
    assert await _cli(settings, "activity", "--out", str(out)) == 0
    assert out.read_text(encoding="utf-8-sig").startswith("group,telegram_user_id")
    with pytest.raises(SystemExit):
        parser().parse_args(["announce", "--help"])
