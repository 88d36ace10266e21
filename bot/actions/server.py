"""The action server: an aiohttp app speaking Rasa's action protocol on /webhook."""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiohttp import web

from bot.actions.sdk import HANDOFF_BUTTON, Action, ActionContext, Dispatcher, Tracker
from core.errors import DomainError

log = logging.getLogger(__name__)

CTX_KEY = web.AppKey("action_context", ActionContext)
TOKEN_KEY = web.AppKey("action_token", str)
REGISTRY_KEY = web.AppKey("action_registry", dict)


def default_actions() -> list[Action]:
    """Every custom action the domain declares."""
    from bot.actions.assistant import all_actions

    return all_actions()


def create_app(ctx: ActionContext, token: str, actions: list[Action] | None = None
               ) -> web.Application:
    """The action server app; every call must carry `?token=<shared secret>`."""
    if not token:
        raise ValueError("the action server needs a shared secret (ACTION_SERVER_TOKEN)")
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[CTX_KEY] = ctx
    app[TOKEN_KEY] = token
    app[REGISTRY_KEY] = {a.name: a for a in (actions or default_actions())}
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/health", health)
    app.router.add_get("/actions", list_actions)
    return app


async def health(request: web.Request) -> web.Response:
    """Liveness probe."""
    return web.json_response({"status": "ok"})


async def list_actions(request: web.Request) -> web.Response:
    """Names of the registered actions (token required)."""
    _check_token(request)
    return web.json_response([{"name": n} for n in sorted(request.app[REGISTRY_KEY])])


def _check_token(request: web.Request) -> None:
    given = request.query.get("token", "")
    if not hmac.compare_digest(given.encode(), request.app[TOKEN_KEY].encode()):
        raise web.HTTPUnauthorized(
            text='{"error": "missing or wrong token"}', content_type="application/json"
        )


async def webhook(request: web.Request) -> web.Response:
    """Run one action for Rasa; failures become a polite reply, never a stack trace."""
    _check_token(request)
    try:
        body: dict[str, Any] = await request.json()
        name = str(body["next_action"])
        tracker = Tracker.from_dict(body.get("tracker") or {})
    except (ValueError, KeyError, TypeError):
        return web.json_response({"error": "malformed action call"}, status=400)
    action = request.app[REGISTRY_KEY].get(name)
    if action is None:
        return web.json_response(
            {"error": f"no registered action found for name '{name}'", "action_name": name},
            status=404,
        )
    dispatcher = Dispatcher()
    ctx = request.app[CTX_KEY]
    try:
        try:
            async with ctx.db.transaction() as session:  # one unit of work per action call
                events = await action.run(ctx.for_call(session), dispatcher, tracker,
                                          body.get("domain") or {})
        except DomainError as exc:
            dispatcher.reply(exc.template, **exc.vars)
            events = []
    except Exception:
        # The database or another dependency is down: apologise and offer a human.
        log.exception("action %s failed for sender %s", name, tracker.sender_id)
        dispatcher.messages.clear()
        dispatcher.reply("error_unavailable", buttons=[HANDOFF_BUTTON])
        events = []
    return web.json_response({"events": events, "responses": dispatcher.messages})
