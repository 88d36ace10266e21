"""Train the Rasa model only when its inputs changed.

Run with the app environment (it only starts Rasa as a subprocess):

    .venv/bin/python nlu/train.py            # train if needed, print the model path
    .venv/bin/python nlu/train.py --force    # train even if an up-to-date model exists

The model's name is a hash of everything that shapes it (config, domain, training data,
custom components, Jieba dictionary, Rasa version), so ``nlu/models/<hash>.tar.gz``
existing means "up to date". Other code imports :func:`ensure_model`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

try:  # our venv has PyYAML; without it YAML files are hashed byte for byte
    import yaml
except ImportError:  # pragma: no cover
    yaml = None

NLU_DIR = Path(__file__).resolve().parent
REPO_DIR = NLU_DIR.parent
RASA_VENV = REPO_DIR / ".venv-rasa"
RASA_BIN = RASA_VENV / "bin" / "rasa"
MODELS_DIR = NLU_DIR / "models"
KEEP_MODELS = 3

# What a model is built from, relative to nlu/. Evaluation data (eval/) and conversation
# tests (tests/) are deliberately not inputs: they are never trained on.
INPUT_FILES = ("config.yml", "domain.yml")
INPUT_TREES = (("data", "*.yml"), ("components", "*.py"), ("jieba_dict", "*"))


class RasaNotInstalled(RuntimeError):
    """The separate Rasa environment (.venv-rasa) is missing."""


class TrainingFailed(RuntimeError):
    """`rasa train` exited with an error or produced no model."""


def input_files() -> list[Path]:
    """Every file whose content shapes the trained model, in a stable order."""
    files = [NLU_DIR / name for name in INPUT_FILES]
    for folder, pattern in INPUT_TREES:
        files += [
            p for p in (NLU_DIR / folder).rglob(pattern)
            if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
        ]
    return sorted(set(files))


def _rasa_version() -> str:
    """The installed Rasa version (part of the hash: a new Rasa needs a new model)."""
    for version_file in sorted(RASA_VENV.glob("lib/python*/site-packages/rasa/version.py")):
        return version_file.read_text(encoding="utf-8")
    return "rasa-not-installed"


def _content(path: Path) -> bytes:
    """What of a file matters to the model: YAML by its parsed value (comments and
    formatting do not trigger a retraining), anything else byte for byte."""
    raw = path.read_bytes()
    if yaml is not None and path.suffix in (".yml", ".yaml"):
        try:
            value = yaml.safe_load(raw.decode("utf-8"))
        except (ValueError, yaml.YAMLError):
            return raw
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode()
    return raw


def inputs_hash() -> str:
    """A short hex digest of the model's inputs (file names and contents)."""
    digest = hashlib.sha256()
    for path in input_files():
        digest.update(path.relative_to(NLU_DIR).as_posix().encode())
        digest.update(b"\0")
        digest.update(_content(path))
        digest.update(b"\0")
    digest.update(_rasa_version().encode())
    return digest.hexdigest()[:20]


def model_path(digest: str | None = None) -> Path:
    """Where the model for the current (or the given) inputs lives."""
    return MODELS_DIR / f"{digest or inputs_hash()}.tar.gz"


def training_info(model: Path) -> dict:
    """What train.py recorded about a model (training seconds, when), or {}."""
    sidecar = model.with_name(model.name.removesuffix(".tar.gz") + ".train.json")
    try:
        return json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    try:
        return path.relative_to(REPO_DIR).as_posix()
    except ValueError:
        return str(path)


def check_rasa() -> Path:
    """Return the rasa executable, or raise RasaNotInstalled naming the fix."""
    if not os.access(RASA_BIN, os.X_OK):
        raise RasaNotInstalled(
            f"Rasa is not installed: {_shown(RASA_BIN)} is missing. "
            "Run `make install-rasa` (it creates .venv-rasa with Rasa 3.6.21), then retry."
        )
    return RASA_BIN


def rasa_env() -> dict[str, str]:
    """Environment for Rasa subprocesses: quiet, no telemetry, nlu/ importable."""
    env = dict(os.environ)
    env.setdefault("RASA_TELEMETRY_ENABLED", "false")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    env.setdefault("PYTHONWARNINGS", "ignore")
    # Rasa puts its cwd on sys.path; this also covers runs from another directory.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(NLU_DIR), env.get("PYTHONPATH")) if p)
    return env


@contextlib.contextmanager
def _training_lock() -> Iterator[None]:
    """One training at a time across processes (launcher, tests, eval)."""
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    with open(MODELS_DIR / ".train.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prune(keep: Path) -> None:
    """Keep the newest few models (and always `keep`)."""
    models = sorted(MODELS_DIR.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in models[KEEP_MODELS:]:
        if old != keep:
            with contextlib.suppress(OSError):
                old.unlink()
            with contextlib.suppress(OSError):
                old.with_name(old.name.removesuffix(".tar.gz") + ".train.json").unlink()


def _run_rasa_train(digest: str, quiet: bool) -> float:
    """Run `rasa train` from nlu/ into a temporary folder; return the seconds it took."""
    rasa = check_rasa()
    tmp_out = MODELS_DIR / f".tmp-{digest}-{os.getpid()}"
    shutil.rmtree(tmp_out, ignore_errors=True)
    cmd = [
        str(rasa), "train",
        "--config", "config.yml", "--domain", "domain.yml", "--data", "data",
        "--out", str(tmp_out), "--fixed-model-name", digest,
    ]
    started = time.monotonic()
    log_lines: list[str] = []
    with subprocess.Popen(
        cmd, cwd=NLU_DIR, env=rasa_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    ) as proc:
        assert proc.stdout is not None
        for raw in iter(lambda: proc.stdout.read1(4096), b""):  # type: ignore[union-attr]
            text = raw.decode("utf-8", "replace")
            log_lines.append(text)
            if not quiet:
                sys.stdout.write(text)
                sys.stdout.flush()
        returncode = proc.wait()
    elapsed = time.monotonic() - started
    produced = tmp_out / f"{digest}.tar.gz"
    try:
        if returncode != 0 or not produced.exists():
            tail = "".join(log_lines)[-3000:]
            raise TrainingFailed(f"`rasa train` failed (exit {returncode}). Last output:\n{tail}")
        os.replace(produced, model_path(digest))
    finally:
        shutil.rmtree(tmp_out, ignore_errors=True)
    return elapsed


def ensure_model(force: bool = False, quiet: bool = False) -> Path:
    """Return the path of a model matching the current inputs, training it if needed.

    Raises RasaNotInstalled when .venv-rasa is missing and TrainingFailed when Rasa fails.
    """
    digest = inputs_hash()
    target = model_path(digest)
    if target.exists() and not force:
        return target
    check_rasa()
    with _training_lock():
        if target.exists() and not force:  # another process trained it meanwhile
            return target
        if not quiet:
            print(f"training the Rasa model {target.name} (inputs changed) …", flush=True)
        elapsed = _run_rasa_train(digest, quiet)
        target.with_name(f"{digest}.train.json").write_text(json.dumps({
            "training_seconds": round(elapsed, 1),
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cpus": os.cpu_count(),
        }), encoding="utf-8")
        _prune(target)
        if not quiet:
            print(f"trained {_shown(target)} in {elapsed:.1f} s", flush=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nlu/train.py",
        description="Train the Rasa model (nlu/models/<hash>.tar.gz) if config, domain, data "
                    "or custom components changed since the last training; otherwise do "
                    "nothing. Needs the Rasa environment (.venv-rasa: `make install-rasa`).",
    )
    parser.add_argument("--force", action="store_true",
                        help="train even if the model is up to date")
    parser.add_argument("--quiet", action="store_true", help="do not show Rasa's output")
    parser.add_argument("--print-hash", action="store_true",
                        help="print the hash of the current inputs and exit")
    args = parser.parse_args(argv)

    if args.print_hash:
        print(inputs_hash())
        return 0
    target = model_path()
    if target.exists() and not args.force:
        print(f"model up to date: {_shown(target)}")
        return 0
    started = time.monotonic()
    try:
        path = ensure_model(force=args.force, quiet=args.quiet)
    except RasaNotInstalled as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"model: {_shown(path)} (elapsed {time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
