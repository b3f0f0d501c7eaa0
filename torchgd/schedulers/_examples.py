"""Factor functions for LambdaLR and MultiplicativeLR, as a user writes them in a file
(``--scheduler lambda:lr_lambda=torchgd.schedulers._examples:warmup``); the tests try them."""


def warmup(t: int) -> float:
    """A linear warm-up over 5 steps, then an inverse square-root decay."""
    return (t + 1) / 5 if t < 5 else (5 / (t + 1)) ** 0.5


def decay(t: int) -> float:
    """0.95 each step for 10 steps, then 0.99."""
    return 0.95 if t <= 10 else 0.99
