"""On a GPU: each rule's torch-exact spelling against its torch.optim class, with torch's
default implementation there (foreach on CUDA) and the single-tensor one (foreach=False), on
the same random gradients. Prints the worst ulp distance of parameters and state per rule,
option set and dtype. Usage: python scripts/gpu_rules.py [device]"""

import sys

import torch

from torchgd import rules
from torchgd.compare import ulp_distance

# every rule of the registry (a new rule file is measured too): defaults, and every option on;
# L-BFGS has one implementation (no foreach) and steps by closure: tests/test_cuda.py runs it
OPTIONS = {
    name: [dict(), {k: v for k, v in rules.all_on(module).items() if k != "lr"}]
    for name, module in rules.ALL.items()
    if not getattr(module, "EVALUATES", False)
}


def worst(name, options, dtype, device, foreach, steps=200):
    module = rules.get(name)
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(1000, generator=g, dtype=torch.float64).to(device, dtype)
    hp = module.Hyper(**{"lr": 0.01, **options})
    mine = {"w": w0.clone()}
    state = module.init(mine, hp)
    theirs = w0.clone().requires_grad_(True)
    kwargs = {**hp.torch_kwargs(), **({} if foreach is None else {"foreach": foreach})}
    opt = getattr(torch.optim, module.TORCH_CLASS)([theirs], **kwargs)
    out = [0, 0]
    for _ in range(steps):
        grad = torch.randn(1000, generator=g, dtype=torch.float64).to(device, dtype)
        with torch.no_grad():
            module.update(mine, {"w": grad}, state, hp, "torch-exact")
        theirs.grad = grad.clone()
        opt.step()
        out[0] = max(out[0], int(ulp_distance(mine["w"], theirs.detach()).max()))
        for s in hp.state_names:
            d = ulp_distance(state["w"][s], opt.state[theirs][s])
            out[1] = max(out[1], int(d.max()))
    return out


def main(device):
    print(f"torch {torch.__version__} on {device}: worst ulp [params, state] over 200 steps")
    for name, sets in OPTIONS.items():
        for options in sets:
            for dtype in (torch.float64, torch.float32):
                row = {f: worst(name, options, dtype, device, f) for f in (None, False, True)}
                label = ",".join(f"{k}={v}" for k, v in options.items()) or "defaults"
                print(
                    f"  {name:<9} {str(dtype)[6:]:<8} default {row[None]}  foreach=False "
                    f"{row[False]}  foreach=True {row[True]}  ({label})"
                )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ("cuda" if torch.cuda.is_available() else "cpu"))
