"""The ceiling of `bench`'s HTTP figures: the smallest ASGI app uvicorn can serve.

No Django, no middleware, no routing: every request (any method, any path) gets the same
small JSON answer, so what it does per second on one core is what uvicorn and httptools
alone allow there. The service's figures read as a fraction of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

BODY = b'{"status":"ok"}'
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"15")],
}
ANSWER = {"type": "http.response.body", "body": BODY}

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def application(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send(START)
    await send(ANSWER)
