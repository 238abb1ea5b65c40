"""Device and precision choices, for GPUs this machine does not have."""

from __future__ import annotations

import pytest

from medqa.modeling.devices import Device, compute_dtype, device_map_for, mixed_precision

CPU = Device()
A100 = Device("cuda", 0, (8, 0))
H100 = Device("cuda", 3, (9, 0))
T4 = Device("cuda", 1, (7, 5))
V100 = Device("cuda", 0, (7, 0))


@pytest.mark.parametrize("device, expected", [(CPU, "float32"), (A100, "bfloat16"), (H100, "bfloat16"),
                                              (T4, "float16"), (V100, "float16")])
def test_auto_dtype_follows_what_the_device_computes_natively(device, expected):
    assert compute_dtype("auto", device) == expected


def test_explicit_dtypes_are_kept_but_emulated_bf16_is_refused():
    assert compute_dtype("float32", T4) == "float32"
    assert compute_dtype("float16", A100) == "float16"
    assert compute_dtype("bfloat16", CPU) == "bfloat16"  # CPU autocast computes in bf16
    with pytest.raises(ValueError, match="emulates bfloat16"):
        compute_dtype("bfloat16", T4)


@pytest.mark.parametrize("dtype, device, flags", [
    ("bfloat16", A100, {"bf16": True, "fp16": False}),
    ("float16", T4, {"bf16": False, "fp16": True}),    # float16 turns the Trainer's fp16 on
    ("float16", CPU, {"bf16": False, "fp16": False}),  # no fp16 autocast on a CPU
    ("float32", A100, {"bf16": False, "fp16": False}),
    ("bfloat16", CPU, {"bf16": True, "fp16": False}),
])
def test_mixed_precision_flags(dtype, device, flags):
    assert mixed_precision(dtype, device) == flags


def test_device_map_puts_the_model_on_this_process_gpu_except_under_zero3():
    assert device_map_for(H100) == {"": 3}
    assert device_map_for(CPU) == {"": "cpu"}
    assert device_map_for(H100, zero3=True) is None
    assert device_map_for(CPU, zero3=True) is None


def test_current_device_is_what_torch_sees():
    import torch

    current = Device.current()
    assert current.kind == ("cuda" if torch.cuda.is_available() else "cpu")
    assert current.is_cuda == (current.capability is not None)
