"""The API's error contract: every failure is a JSON body `{"error", "request_id", "details"?}`
with a status that says whose fault it is (4xx the caller's, 503/504 the server's load).

Errors OpenAI clients branch on (an unknown `model`) carry an OpenAI `code`: their `error`
is OpenAI's object `{"message", "type", "param", "code"}` instead of a string."""

from __future__ import annotations

from typing import Optional


class ApiError(Exception):
    """A request answered with `status` and a one-line `message` (and optional headers)."""

    code: Optional[str] = None
    param: Optional[str] = None
    kind: str = "invalid_request_error"

    def __init__(self, status: int, message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}

    def body(self, request_id: str) -> dict:
        if self.code is None:
            return error_body(self.message, request_id)
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code},
                "request_id": request_id}


def error_body(message: str, request_id: str, details: Optional[list] = None) -> dict:
    body = {"error": message, "request_id": request_id}
    if details:
        body["details"] = details
    return body


def describe_validation(errors: list[dict]) -> tuple[int, str, list]:
    """FastAPI's validation errors → (status, one readable line, JSON-safe details)."""
    details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
               for e in errors]
    if any(e["type"] == "json_invalid" for e in details):
        return 400, "the request body is not valid JSON", details
    if any(e["type"] == "missing" and e["loc"] == ["body"] for e in details):
        return 400, "the request body is empty: a JSON object is expected", details
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(p for p in first["loc"] if p != "body")
    return 422, f"{where}: {first['msg']}" if where else first["msg"], details
