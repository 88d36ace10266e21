"""HTTP client for Rasa's REST channel."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from core import identity

log = logging.getLogger(__name__)


class RasaUnavailable(RuntimeError):
    """Rasa did not answer in time (down, starting, or overloaded)."""


class RasaClient:
    """Sends one user message to /webhooks/rest/webhook and returns Rasa's replies."""

    def __init__(self, base_url: str, timeout_seconds: float,
                 signing_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        # Proves to the action server that the gateway vouches for the sender (core.identity).
        self.signing_key = signing_key
        if not signing_key:
            log.warning("IDENTITY_SIGNING_KEY is not set: actions will treat every user as "
                        "unknown (no orders); `make run` sets it for you")
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds, connect=min(2, timeout_seconds))
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the connection pool."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, connector=aiohttp.TCPConnector(limit=64)
            )

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, sender: str, message: str, metadata: dict[str, Any] | None = None
                   ) -> list[dict[str, Any]]:
        """Post a message; raises RasaUnavailable on timeout, refusal or a server error."""
        await self.start()
        assert self._session is not None
        body = {"sender": sender, "message": message,
                "metadata": self.signed_metadata(sender, metadata)}
        try:
            async with self._session.post(f"{self.base_url}/webhooks/rest/webhook",
                                          json=body) as resp:
                if resp.status != 200:
                    raise RasaUnavailable(f"Rasa answered HTTP {resp.status}")
                data = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise RasaUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return data if isinstance(data, list) else []

    def signed_metadata(self, sender: str, metadata: dict[str, Any] | None) -> dict[str, Any]:
        """The metadata with the gateway's proof of the sender (replacing any given one)."""
        out = {k: v for k, v in (metadata or {}).items() if k != identity.METADATA_KEY}
        if self.signing_key:
            out[identity.METADATA_KEY] = identity.sign(self.signing_key, sender)
        return out

    async def is_ready(self) -> bool:
        """True once Rasa's server answers (it serves only after loading the model).

        GET / — Rasa runs without --enable-api, so /status does not exist.
        """
        await self.start()
        assert self._session is not None
        try:
            async with self._session.get(f"{self.base_url}/") as resp:
                return resp.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False
