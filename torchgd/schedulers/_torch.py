"""torch's own class of a scheduler, built on an optimizer (the optim path's): shared by a
``Schedule`` and the members of a composition. Not a scheduler itself (a leading underscore)."""

from __future__ import annotations

import dataclasses


def torch_scheduler(module, options, optimizer):
    """``torch.optim.lr_scheduler.<module.TORCH_CLASS>`` on ``optimizer``, given ``options`` as
    torch takes them (``module.torch_kwargs`` where torch takes other objects)."""
    import torch

    cls = getattr(torch.optim.lr_scheduler, module.TORCH_CLASS)
    return cls(optimizer, **getattr(module, "torch_kwargs", dataclasses.asdict)(options))
