"""Client errors of the HTTP service, answered as JSON ``{"error", "message", "details"}``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request


class ApiError(Exception):
    """A client error: HTTP status, a stable machine-readable code, a human message."""

    def __init__(self, status: int, error: str, message: str, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.details, self.headers = status, error, message, details, headers


def error_body(error: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error, "message": message}
    if details is not None:
        body["details"] = details
    return body


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_json(media: str) -> bool:
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
