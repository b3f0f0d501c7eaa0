"""``torchgd bench``'s report as a table: one section after another, each row a ratio
against its target (``bench.run`` measures; this writes)."""

from __future__ import annotations


def format_table(r: dict) -> str:
    """The bench's report as a table, one section after another."""
    m = r["machine"]
    lines = [
        f"torchgd bench ({'quick' if r['quick'] else 'full'}) on {m['cpu']}, {m['cores']} "
        f"threads, Python {m['python']}, torch {m['torch']}",
    ]
    for name in FORMATS:  # the sections, in bench.SECTIONS order
        if name in r:
            lines += FORMATS[name](r[name])
    if r["quick"]:
        lines.append(
            "  (quick: CI-sized runs; the targets are for the full sizes: 256 lrs, N = 10 million "
            "for big N, 100 million for memory)"
        )
    return "\n".join(lines)


def _target(value, op: str, target, scale=1, unit="") -> str:
    """``(target >= 0.5: met)`` or ``(target >= 0.5: MISSED)``, judged on the unrounded value
    (0.497 printed as 0.50 had looked met)."""
    met = {">=": value >= target, "<=": value <= target, "<": value < target}[op]
    return f"(target {op} {target * scale:g}{unit}: {'met' if met else 'MISSED'})"


def _numerical_rows(num: dict) -> list:
    return [
        f"  numerical gradient, lecture loop      {num['loop_points_per_s']:>14,.0f} points/s",
        f"  numerical gradient, vectorized {num['grid']:>9} "
        f"{num['vectorized_points_per_s']:>11,.0f} points/s  speed-up {num['speedup']:.1f}x "
        f"{_target(num['speedup'], '>=', num['target'])}",
    ]


def _sgd_rows(sgd: dict) -> list:
    lines = [f"  per-sample SGD, lecture pure Python   {sgd['python_steps_per_s']:>14,.0f} steps/s"]
    if sgd.get("device", "cpu") != "cpu":
        lines.append(
            f"  per-sample SGD on {sgd['device']} (the rows below; pure Python on the CPU)"
        )
    for name, rate in sgd["torchgd"].items():
        lines.append(
            f"  per-sample SGD, {name:<9} torchgd {rate:>10,.0f} steps/s, bare loop "
            f"{sgd['bare'][name]:>8,.0f}: {sgd['ratio'][name]:.3g} of it "
            f"{_target(sgd['ratio'][name], '>=', sgd['target'][name])}"
        )
    return lines


def _logging_rows(lg: dict) -> list:
    return [
        f"  TensorBoard every step, {lg['steps']} SGD steps x 3 paths: "
        f"{lg['plain_s']:.2f} s -> {lg['logged_s']:.2f} s, overhead "
        f"{100 * lg['overhead']:.1f}% {_target(lg['overhead'], '<=', lg['target'], 100, '%')}"
    ]


def _sweep_rows(sw: dict) -> list:
    return [
        f"  sweep of {sw['k']} lrs, per-sample SGD, {sw['epochs']} epochs: "
        f"{sw['separate_s']:.2f} s separately -> {sw['vectorized_s']:.3f} s vectorized, "
        f"speed-up {sw['speedup']:.0f}x {_target(sw['speedup'], '>=', sw['target'])}"
    ]


def _big_n_rows(bn: dict) -> list:
    where = f" on {bn['device']}" if bn.get("device", "cpu") != "cpu" else ""
    lines = [
        f"  full batch, N = {bn['n']:,} float32{where}: torch.dot(x, y) {1e3 * bn['dot_s']:.2f} ms"
    ]
    for name, p in bn["paths"].items():
        if "error" in p:
            lines.append(f"    {name:<16} not measured: {p['error']}")
            continue
        lines.append(
            f"    {name:<16} {1e3 * p['epoch_s']:>6.2f} ms/epoch {p['ratio_to_dot']:>5.3g}x "
            f"the dot product {_target(p['ratio_to_dot'], '<=', p['target'])}, first gradient "
            f"{p['grad_rel_err']:.1e} from float64 "
            f"{_target(p['grad_rel_err'], '<=', bn['grad_rel_err_target'])}"
        )
        if "compile_s" in p:
            lines.append(f"      (compiled in {p['compile_s']:.1f} s, before the run)")
    return lines


def _memory_rows(me: dict) -> list:
    return [
        f"  peak memory, full batch, N = {me['n']:,} float32 ({me['data_bytes'] / 2**20:,.0f} "
        f"MiB of data): {(me['peak_bytes'] - me['base_bytes']) / 2**20:,.0f} MiB more than "
        f"before the data, {me['ratio']:.3g}x the data {_target(me['ratio'], '<', me['target'])}"
    ]


def _startup_rows(st: dict) -> list:
    return [
        f"  torchgd --help                        {st['help_s']:>13.3f} s",
        f"  torchgd lecture                       {st['lecture_s']:>13.3f} s, "
        f"{st['lecture_ratio']:.3g}x the floor below "
        f"{_target(st['lecture_ratio'], '<=', st['lecture_target'])}",
        f"  python -c 'import torch'              {st['import_torch_s']:>13.3f} s",
        f"  ... and torch._dynamo (torch.optim)   {st['import_torch_and_dynamo_s']:>13.3f} s",
    ]


FORMATS = {
    "numerical": _numerical_rows,
    "sgd": _sgd_rows,
    "logging": _logging_rows,
    "sweep": _sweep_rows,
    "big_n": _big_n_rows,
    "memory": _memory_rows,
    "startup": _startup_rows,
}
