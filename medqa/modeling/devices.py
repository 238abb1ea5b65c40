"""Where a model runs and in what precision: pure choices over a described device.

`Device.current()` is the only function here that asks torch; everything else
takes a `Device`, so the GPU rules are tested on a CPU machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

DeviceMap = Optional[dict[str, Union[int, str]]]


@dataclass(frozen=True)
class Device:
    """The device a process computes on. `capability` is CUDA's (major, minor)."""

    kind: str = "cpu"  # "cpu" or "cuda"
    index: int = 0
    capability: Optional[tuple[int, int]] = None

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    @property
    def native_bf16(self) -> bool:
        # Ampere (8.0) and later compute in bf16. Turing (T4, 7.5) and Volta (V100, 7.0)
        # only emulate it, slowly, yet torch.cuda.is_bf16_supported() says True there.
        return self.is_cuda and self.capability is not None and self.capability >= (8, 0)

    @classmethod
    def current(cls) -> "Device":
        """This process's device: the CUDA device Ray Train (or torch) made current, else the CPU."""
        import torch

        if not torch.cuda.is_available():
            return cls()
        index = torch.cuda.current_device()
        return cls("cuda", index, tuple(torch.cuda.get_device_capability(index)))


def compute_dtype(requested: str, device: Device) -> str:
    """The compute dtype's name. `auto`: bfloat16 where the GPU computes in it natively,
    float16 on older GPUs, float32 on the CPU. An explicit bfloat16 on a GPU that only
    emulates it is refused: it would run, many times slower than float16."""
    if requested == "auto":
        if not device.is_cuda:
            return "float32"
        return "bfloat16" if device.native_bf16 else "float16"
    if requested == "bfloat16" and device.is_cuda and not device.native_bf16:
        raise ValueError(f"compute_dtype bfloat16: this GPU (compute capability {device.capability}) only "
                         "emulates bfloat16; use float16 or auto")
    return requested


def mixed_precision(dtype: str, device: Device) -> dict[str, bool]:
    """The Trainer's mixed-precision flags for a compute dtype. fp16 autocast (with its loss
    scaler) exists on GPUs only; bf16 autocast also runs on CPUs."""
    return {"bf16": dtype == "bfloat16", "fp16": dtype == "float16" and device.is_cuda}


def device_map_for(device: Device, *, zero3: bool = False) -> DeviceMap:
    """Where from_pretrained puts the weights: the whole model on this process's GPU (one GPU
    per Ray worker or Serve replica), on the CPU without one, and nowhere under ZeRO-3, where
    DeepSpeed places the shards itself."""
    if zero3:
        return None
    return {"": device.index} if device.is_cuda else {"": "cpu"}
