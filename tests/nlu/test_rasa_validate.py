"""`rasa data validate` on nlu/ (about 10 s; skipped when .venv-rasa is not installed)."""

from __future__ import annotations

import subprocess

import pytest

from nlu.train import NLU_DIR, RASA_BIN, rasa_env


@pytest.mark.skipif(not RASA_BIN.exists(), reason="Rasa is not installed (make install-rasa)")
def test_rasa_data_validate_passes():
    # Not --fail-on-warnings: utter_ask_rephrase / utter_default are used by Rasa's own
    # two-stage fallback, which the validator reports as "not used in any story or rule".
    proc = subprocess.run(
        [str(RASA_BIN), "data", "validate", "--data", "data", "--domain", "domain.yml",
         "--config", "config.yml"],
        cwd=NLU_DIR, env=rasa_env(), capture_output=True, text=True, timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "No story structure conflicts found" in output, output[-3000:]
