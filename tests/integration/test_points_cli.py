"""`python -m community.points`: every command answers --help; reconcile exits 1 on drift."""

import sqlite3

import pytest

from community.points.__main__ import COMMANDS, build_parser, main


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    build_parser()
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0
        assert "usage:" in capsys.readouterr().out


def test_reconcile_exit_code(tmp_path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cli.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    assert main(["reward-add", "--code", "CUP", "--kind", "gift", "--name-zh", "杯",
                 "--cost", "5"]) == 0
    con = sqlite3.connect(path)
    con.execute("INSERT INTO customers (code, kind, name, phone, region, channel, created_at, "
                "updated_at) VALUES ('D1', 'dealer', 'D', '', '', '', '2026-01-01', "
                "'2026-01-01')")
    con.commit()
    assert main(["award", "--customer", "D1", "--rule", "referral", "--source", "x"]) == 0
    assert main(["reconcile"]) == 0
    con.execute("UPDATE points_balances SET available = available + 1")
    con.commit()
    con.close()
    assert main(["reconcile"]) == 1
    assert "DRIFT" in capsys.readouterr().out
    assert main(["redeem", "--customer", "D1", "--reward", "NOPE"]) == 1


def test_referral_is_awarded_once_per_new_dealer(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ref.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    assert main(["rewards"]) == 0  # migrates the empty database
    con = sqlite3.connect(path)
    for code in ("D1", "D9"):
        con.execute("INSERT INTO customers (code, kind, name, phone, region, channel, tier, "
                    "active, created_at, updated_at) VALUES (?, 'dealer', ?, '', '华东', '', "
                    "'general', 1, '2026-01-01', '2026-01-01')", (code, code))
    con.commit()
    assert main(["referral", "--referrer", "D1", "--new", "D9"]) == 0
    assert main(["referral", "--referrer", "D1", "--new", "D9"]) == 0
    out = capsys.readouterr().out
    assert "awarded 200 to D1" in out and "already awarded" in out
    assert main(["balance", "--customer", "D1"]) == 0
    assert "200" in capsys.readouterr().out
    con.close()
