"""Several LoRA adapters on one base model (peft), one of them active per forward pass.

    adapters = AdapterSet(base_model, default_adapter_dir=None)
    adapters.load("v2", "runs/train/adapter")
    with adapters.active("v2"):      # None: the default adapter, else the bare base
        logits = adapters.model(**batch).logits

The first load wraps a bare base model in a `peft.PeftModel` (and unloading the last one
unwraps it), so callers read `.model` after loading and unloading. Not thread-safe:
whoever owns the model runs every call on one thread (the serving replica's model
thread), so an adapter never changes under a forward pass.

May import: config (the name rule), modeling.lora.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

from medqa.config import ADAPTER_NAME as NAME
from medqa.modeling.lora import load_adapter

DEFAULT = "default"
"""peft's name for the adapter loaded with the model (`serving.adapter`)."""


_ESCAPES = {"_": "__", ".": "_d", "-": "_h"}
"""Each escape starts with "_" and "_" itself is doubled, so two names never share a peft name."""


def peft_name(name: str) -> str:
    """The name peft keeps an adapter under: module keys cannot hold "." (and "-" reads badly),
    so those are escaped, one-to-one; the prefix keeps clear of peft's own "default"."""
    if not NAME.fullmatch(name) or name == DEFAULT:
        raise ValueError(f"adapter names are letters, digits, '_', '-' and '.' (up to 64, not 'default'): {name!r}")
    return "medqa_" + "".join(_ESCAPES.get(c, c) for c in name)


class AdapterSet:
    """One model and the adapters loaded into it. Run the model inside `active(...)`: outside it
    a set without a default adapter may still have the last-selected one switched on (peft
    always has an active adapter)."""

    def __init__(self, model, default_adapter_dir: Optional[str] = None):
        self.model = load_adapter(model, default_adapter_dir) if default_adapter_dir else model
        self.has_default = bool(default_adapter_dir)
        self._loaded: dict[str, str] = {}  # our name -> peft's

    @property
    def loaded(self) -> list[str]:
        return list(self._loaded)

    def load(self, name: str, path: str) -> None:
        """Load a saved LoRA adapter under `name` (a no-op if it is loaded already)."""
        if name in self._loaded:
            return
        key = peft_name(name)
        if hasattr(self.model, "peft_config"):
            self.model.load_adapter(path, adapter_name=key)
        else:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, path, adapter_name=key)
        self.model.eval()
        self._loaded[name] = key
        self._activate(None)  # loading makes nothing active: the default stays the default

    def unload(self, name: str) -> None:
        """Free an adapter's weights (a no-op for one not loaded; ValueError for the served default,
        which lives as long as the model)."""
        peft_name(name)
        key = self._loaded.pop(name, None)
        if key is None:
            return
        if not self.has_default and not self._loaded:  # a PeftModel without adapters cannot run: unwrap it
            self.model = self.model.unload()
            return
        self.model.delete_adapter(key)
        if not self.has_default:  # peft must not point at the deleted one
            self.model.set_adapter(next(iter(self._loaded.values())))

    def _activate(self, name: Optional[str]) -> None:
        if name is not None:
            self.model.set_adapter(self._loaded[name])
        elif self.has_default:
            self.model.set_adapter(DEFAULT)

    @contextmanager
    def active(self, name: Optional[str]) -> Iterator[object]:
        """The model with adapter `name` active (None: the default adapter, or the bare base
        when there is none); the default is active again afterwards."""
        if name is not None and name not in self._loaded:
            raise KeyError(f"adapter {name!r} is not loaded (loaded: {self.loaded})")
        try:
            if name is None and not self.has_default and self._loaded:  # adapters, none wanted: the bare base
                with self.model.disable_adapter():
                    yield self.model
            else:
                self._activate(name)
                yield self.model
        finally:
            self._activate(None)
