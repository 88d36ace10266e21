"""nlu/train.py without training: hashing, up-to-date detection, missing Rasa."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import nlu.train as train

REPO = Path(__file__).resolve().parents[2]


def test_help_runs_with_our_venv():
    out = subprocess.run([sys.executable, "nlu/train.py", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "--force" in out.stdout


def test_inputs_cover_config_domain_data_and_components():
    names = {p.relative_to(train.NLU_DIR).as_posix() for p in train.input_files()}
    assert {"config.yml", "domain.yml", "data/rules.yml", "data/stories.yml",
            "components/jieba_tokenizer.py", "components/entity_cleaner.py",
            "components/entity_rules.py"} <= names
    assert any(n.startswith("data/nlu/") for n in names)
    assert any(n.startswith("jieba_dict/") for n in names)
    assert not any(n.startswith(("eval/", "tests/", "models/")) for n in names)


def test_hash_is_stable_and_follows_content(tmp_path, monkeypatch):
    first = train.inputs_hash()
    assert first == train.inputs_hash()
    assert train.model_path(first).name == f"{first}.tar.gz"
    # A copy of nlu/ with one training file changed hashes differently.
    import shutil

    copy = tmp_path / "nlu"
    for rel in [p.relative_to(train.NLU_DIR) for p in train.input_files()]:
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(train.NLU_DIR / rel, copy / rel)
    monkeypatch.setattr(train, "NLU_DIR", copy)
    assert train.inputs_hash() == first
    chitchat = copy / "data" / "nlu" / "chitchat.yml"
    with open(chitchat, "a", encoding="utf-8") as handle:
        handle.write("\n# a comment does not change the model\n")
    assert train.inputs_hash() == first
    chitchat.write_text(chitchat.read_text(encoding="utf-8").replace("- 你好\n", "- 你好你好\n", 1),
                        encoding="utf-8")
    second = train.inputs_hash()
    assert second != first
    (copy / "components" / "jieba_tokenizer.py").write_text("# changed\n", encoding="utf-8")
    assert train.inputs_hash() != second


def test_up_to_date_model_is_returned_without_rasa(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "MODELS_DIR", tmp_path)
    monkeypatch.setattr(train, "RASA_BIN", tmp_path / "no-rasa")
    existing = train.model_path()
    existing.write_bytes(b"model")
    assert train.ensure_model() == existing
    out = subprocess.run(
        [sys.executable, "-c",
         "import sys, nlu.train as t; from pathlib import Path;"
         f"t.MODELS_DIR = Path({str(tmp_path)!r}); sys.argv = ['x']; sys.exit(t.main())"],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "model up to date" in out.stdout


def test_missing_rasa_venv_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "MODELS_DIR", tmp_path)
    monkeypatch.setattr(train, "RASA_BIN", tmp_path / "no-rasa")
    with pytest.raises(train.RasaNotInstalled, match="make install-rasa"):
        train.ensure_model()
    assert train.main([]) == 2


def test_rasa_env_puts_nlu_on_the_path():
    env = train.rasa_env()
    assert str(train.NLU_DIR) in env["PYTHONPATH"].split(os.pathsep)
    assert env["RASA_TELEMETRY_ENABLED"] in ("false", os.environ.get("RASA_TELEMETRY_ENABLED"))
