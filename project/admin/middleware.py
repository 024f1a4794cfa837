"""The admin's middleware, kept to its URLs.

The admin needs sessions, CSRF protection, authentication and messages. Django's
middleware for them is `MiddlewareMixin`, which under ASGI runs each hook in a thread, and
its CSRF check would refuse the API's cookie-less POSTs. Each class here is Django's own,
acting only on requests under `ADMIN_URL`: any other request is handed straight on, on the
event loop, as if the class were not installed. They are subclasses, so the admin's system
checks (`admin.E408`-`E410`) find them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponseBase
from django.middleware import csrf


class _AdminOnly:
    """Runs Django's middleware (`MiddlewareMixin.__call__`) for the admin's requests only."""

    get_response: Callable[[HttpRequest], Any]

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)  # type: ignore[call-arg]
        self.admin_prefix = f"/{settings.ADMIN_URL}"

    def __call__(self, request: HttpRequest) -> Any:
        if not request.path_info.startswith(self.admin_prefix):
            # In async mode this is the next middleware's coroutine, awaited by the caller.
            return self.get_response(request)
        return super().__call__(request)  # type: ignore[misc]


class SessionMiddleware(_AdminOnly, sessions.SessionMiddleware):
    """Django's sessions, for the admin."""


class AuthenticationMiddleware(_AdminOnly, auth.AuthenticationMiddleware):
    """Django's `request.user`, for the admin."""


class MessageMiddleware(_AdminOnly, messages.MessageMiddleware):
    """Django's messages ("2 reports requeued"), for the admin."""


class CsrfViewMiddleware(_AdminOnly, csrf.CsrfViewMiddleware):
    """Django's CSRF protection, for the admin (the API's writes carry no cookie to forge).

    Its view hook is a coroutine function, so the handler awaits it on the loop instead of
    handing every request's hook to a thread; the admin's requests run Django's in one.
    """

    async def process_view(  # type: ignore[override]
        self,
        request: HttpRequest,
        callback: Callable[..., Any],
        callback_args: tuple[Any, ...],
        callback_kwargs: dict[str, Any],
    ) -> HttpResponseBase | None:
        if not request.path_info.startswith(self.admin_prefix):
            return None
        check = sync_to_async(super().process_view, thread_sensitive=True)
        return await check(request, callback, callback_args, callback_kwargs)
