"""One error hierarchy: every domain error carries a code and a user-facing template key."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A failure the user should hear about in words; adapters render `template` with `vars`."""

    code = "domain_error"
    template = "error_generic"

    def __init__(self, message: str = "", **template_vars: Any) -> None:
        super().__init__(message or self.code)
        self.vars = template_vars


class NotFound(DomainError):
    code = "not_found"
    template = "error_not_found"


class NotLinked(DomainError):
    code = "not_linked"
    template = "link_required"


class LinkCodeInvalid(DomainError):
    code = "link_code_invalid"
    template = "link_code_invalid"


class LinkThrottled(DomainError):
    code = "link_throttled"
    template = "link_throttled"


class PermissionDenied(DomainError):
    code = "permission_denied"
    template = "error_permission"
