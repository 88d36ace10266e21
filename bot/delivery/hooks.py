"""The service modules that register outbox hooks: imported by the worker before it sends.

One list in one place: a module that calls ``outbox.on_sent``/``on_failed``/``on_migrated``
must be named here, or its effects would silently not run in the worker process.
"""

from __future__ import annotations

import importlib

HOOK_MODULES: tuple[str, ...] = (
    "core.services.notifications",
    "core.services.tickets",
    "community.groups",          # a migrated group keeps its settings and members
    "community.announcements",   # a deleted group is deactivated
)


def load_hook_modules() -> list[str]:
    """Import every module that registers outbox hooks; returns their names."""
    for name in HOOK_MODULES:
        importlib.import_module(name)
    return list(HOOK_MODULES)
