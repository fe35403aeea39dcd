"""Device auto-selection: cuda > mps > cpu, or what the config asks for."""

from __future__ import annotations

import torch


def select_device(preference: str = "auto") -> torch.device:
    """Return the device to run on.

    Args:
        preference: ``auto`` (cuda > mps > cpu) or an explicit ``cpu``, ``cuda``, ``mps``.

    Raises:
        RuntimeError: when an explicit accelerator is asked for and is not available.
    """
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for but torch sees no CUDA device")
    if preference == "mps" and not has_mps:
        raise RuntimeError("device: mps was asked for but it is not available")
    return torch.device(preference)
