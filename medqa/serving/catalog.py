"""The models a server answers as: the base model's id and one `<base>:<name>` per adapter
(`serving.adapters`), as `/v1/models` lists them and a request's `model` chooses them.

A request without `model`, or with the base id, gets the served model (the base with
`serving.adapter`, if one is set); `<base>:<name>` gets the base with adapter `name`
instead. Anything else is a 404 in OpenAI's error shape, never an answer from a model the
caller did not ask for.

Pure: no Ray, no HTTP, no model. May import: serving.errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from medqa.serving.errors import ApiError

SEPARATOR = ":"


class ModelNotFound(ApiError):
    """A `model` this server does not serve (404, OpenAI's `model_not_found`)."""

    code, param, kind = "model_not_found", "model", "invalid_request_error"

    def __init__(self, requested: str, known: list[str]):
        super().__init__(404, f"The model {requested!r} does not exist on this server; it serves "
                              f"{', '.join(map(repr, known))} (GET /v1/models).")


@dataclass(frozen=True)
class Catalog:
    base: str
    adapters: tuple[str, ...] = ()
    created: int = 0
    """When the server started (Unix seconds), OpenAI's `created` of every model."""

    def ids(self) -> list[str]:
        return [self.base] + [self.base + SEPARATOR + name for name in self.adapters]

    def adapter_for(self, requested: Optional[str]) -> Optional[str]:
        """The adapter a request's `model` names (None: the served model), or ModelNotFound."""
        if requested is None or requested == self.base:
            return None
        base, sep, name = requested.rpartition(SEPARATOR)
        if sep and base == self.base and name in self.adapters:
            return name
        raise ModelNotFound(requested, self.ids())

    def model_id(self, adapter: Optional[str]) -> str:
        """The id that names the model that answered."""
        return self.base if adapter is None else self.base + SEPARATOR + adapter

    def card(self, model_id: str) -> dict:
        """OpenAI's model object for one id (ModelNotFound for an unknown one)."""
        adapter = self.adapter_for(model_id)
        card = {"id": model_id, "object": "model", "created": self.created, "owned_by": "medqa"}
        if adapter is not None:
            card["parent"] = self.base
        return card

    def listing(self) -> dict:
        return {"object": "list", "data": [self.card(i) for i in self.ids()]}
