"""Proof of who is asking, from the gateway to the action server, through Rasa.

Rasa's REST channel has no authentication: anyone who reaches it can post
`{"sender": "<any Telegram id>", ...}`. So the gateway — the only component that learns the
sender from Telegram itself — signs the sender id with a key only it and the action server hold
(`IDENTITY_SIGNING_KEY`), and sends the proof in the message `metadata`. Rasa copies the
metadata onto the user event; the action server finds it in the tracker as
`latest_message.metadata` and trusts the sender id only if the proof verifies.

Proof (metadata key `identity`): `{"v": 1, "ts": <unix seconds>, "sig": <hex>}` where
`sig = HMAC-SHA256(key, "dealer-desk/identity/v1\\n<sender id>\\n<ts>")`. Valid for
`MAX_AGE_SECONDS` (a turn takes seconds; a stolen proof is of little use for long).

Also here: the pepper for link-code hashes (`link_code_pepper`), shared by every process that
issues or redeems codes. No Telegram, Rasa or aiohttp imports.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.settings import Settings

METADATA_KEY = "identity"
MAX_AGE_SECONDS = 120
CLOCK_SKEW_SECONDS = 30
_DOMAIN = b"dealer-desk/identity/v1"


def _key(key: str | bytes) -> bytes:
    return key.encode() if isinstance(key, str) else key


def _mac(key: str | bytes, sender_id: str, ts: int) -> str:
    msg = b"\n".join([_DOMAIN, str(sender_id).encode(), str(int(ts)).encode()])
    return hmac.new(_key(key), msg, hashlib.sha256).hexdigest()


def sign(key: str | bytes, sender_id: str, now: float | None = None) -> dict[str, Any]:
    """The proof that the gateway vouches for `sender_id` (put it in metadata[METADATA_KEY])."""
    if not key:
        raise ValueError("no identity signing key")
    ts = int(time.time() if now is None else now)
    return {"v": 1, "ts": ts, "sig": _mac(key, sender_id, ts)}


def verify(key: str | bytes | None, sender_id: str, proof: Any, now: float | None = None,
           max_age: float = MAX_AGE_SECONDS) -> bool:
    """True only if `proof` was made with `key` for exactly this sender, recently."""
    if not key or not isinstance(proof, dict) or proof.get("v") != 1:
        return False
    ts, sig = proof.get("ts"), proof.get("sig")
    if not isinstance(ts, int) or isinstance(ts, bool) or not isinstance(sig, str):
        return False
    current = time.time() if now is None else now
    if ts > current + CLOCK_SKEW_SECONDS or current - ts > max_age:
        return False
    return hmac.compare_digest(sig.encode(), _mac(key, sender_id, ts).encode())


def verify_metadata(key: str | bytes | None, sender_id: str, metadata: Any,
                    now: float | None = None, max_age: float = MAX_AGE_SECONDS) -> bool:
    """verify() applied to a user message's metadata dict."""
    proof = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    return verify(key, sender_id, proof, now=now, max_age=max_age)


# ---- link-code pepper ---------------------------------------------------------------------

PEPPER_FILE = Path("secrets") / "link_code_pepper"


def pepper_path(data_dir: Path) -> Path:
    """Where the generated pepper is kept under the data dir."""
    return data_dir / PEPPER_FILE


def load_or_create_pepper(data_dir: Path) -> str:
    """The pepper stored under `data_dir`, generated (0600, in a 0700 folder) on first use.

    Codes live for days, so the pepper must survive restarts: a per-run value would make every
    issued code unredeemable.
    """
    path = pepper_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        value = ""
    if not value:
        candidate = secrets.token_hex(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race: use theirs
            return path.read_text(encoding="utf-8").strip()
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(candidate + "\n")
        value = candidate
    os.chmod(path, 0o600)
    return value


_pepper_cache: dict[str, str] = {}


def pepper_for(settings: Settings) -> str:
    """LINK_CODE_PEPPER if set, else the pepper file under the settings' data dir."""
    if settings.secrets.link_code_pepper:
        return settings.secrets.link_code_pepper
    data_dir = str(settings.data_path)
    if data_dir not in _pepper_cache:
        _pepper_cache[data_dir] = load_or_create_pepper(settings.data_path)
    return _pepper_cache[data_dir]


def link_code_pepper() -> str:
    """This process's pepper: pepper_for() the settings from the environment."""
    from core.settings import load_settings

    return pepper_for(load_settings())


def hash_link_code(pepper: str | bytes, code: str) -> str:
    """Keyed hash of a normalised link code (HMAC-SHA256, hex): a leaked table reveals nothing."""
    return hmac.new(_key(pepper), code.strip().upper().encode(), hashlib.sha256).hexdigest()
