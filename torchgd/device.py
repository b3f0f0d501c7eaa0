"""Device and dtype resolution: ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` and float64/float32.

Nothing here is global: the resolved device and dtype are passed on as arguments.
"""

from __future__ import annotations

import re

import torch

from .errors import TorchgdError
from .options import check_dtype_name

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def available_devices() -> list[str]:
    """The devices this machine can run on, e.g. ``['cpu', 'cuda:0']``."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn a device name into a ``torch.device``, or raise TorchgdError naming what is available.

    ``auto`` picks the first CUDA device when there is one, else the CPU. A ``torch.device``
    is checked the same way.
    """
    spec = str(spec or "auto").strip().lower()
    available = available_devices()
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if match:
        index = int(match.group(1) or 0)
        if not torch.cuda.is_available():
            raise TorchgdError(
                f"device '{spec}' is not available: this PyTorch "
                f"({torch.__version__}) sees no CUDA device; available: {', '.join(available)}"
            )
        if index >= torch.cuda.device_count():
            raise TorchgdError(
                f"device '{spec}' is not available: there are {torch.cuda.device_count()} CUDA "
                f"device(s); available: {', '.join(available)}"
            )
        return torch.device("cuda", index)
    if spec == "mps":
        if "mps" not in available:
            raise TorchgdError(
                f"device 'mps' is not available on this machine; available: {', '.join(available)}"
            )
        return torch.device("mps")
    raise TorchgdError(
        f"unknown device '{spec}': use auto, cpu, cuda, cuda:N or mps; available here: "
        f"{', '.join(available)}"
    )


def resolve_dtype(name: str | torch.dtype = "float64") -> torch.dtype:
    """``"float64"`` or ``"float32"`` (or the torch dtype itself) to a ``torch.dtype``."""
    if isinstance(name, torch.dtype):
        if name in DTYPES.values():
            return name
        name = str(name).removeprefix("torch.")
    return DTYPES[check_dtype_name(name)]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
