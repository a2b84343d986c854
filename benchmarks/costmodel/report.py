"""Counts x unit costs -> predicted time per review, beside the measured one; markdown tables."""
from __future__ import annotations

import collections

#: Report rows: label and the counter's phases it covers.
PHASES = (
    ("gather (row sum of the review's words in W01)", ("gather",)),
    ("forward (logit h . w12)", ("forward",)),
    ("loss (degree-5 sigmoid, s(z) - y)", ("loss",)),
    ("backward (dw12, dh; update of w12 landed)", ("backward", "update_w12")),
    ("scatter (update into W01's rows)", ("scatter",)),
    ("refresh, trainer side (mask, unmask)", ("refresh",)),
    ("refresh, key holder (decrypt, encrypt)", ("refresh_kh",)),
    ("monitoring term + release", ("monitor", "release")),
    ("step bookkeeping", ("step", "other")),
)
ADD_METHODS = ("add", "sub", "neg", "permute", "from_signed")


def _unit(units: dict, row: dict, clock: str) -> float:
    for u in units["calls"]:
        if (u["method"], u["limbs"], u["alpha"], u["extra"]) == (row["method"], row["limbs"], row["alpha"],
                                                                  row["extra"]):
            return u[clock]
    raise KeyError(row["method"])


def per_phase(counts: dict, units: dict, clock: str = "cpu") -> dict:
    """Per report row, per review: counts, measured and predicted seconds."""
    n = counts["reviews"]
    p = units["primitives"]
    # Per limb, from six-limb calls (most calls are multi-limb; a one-limb call carries the Python wrapper).
    t_ntt = p["ntt_6limbs"][clock] / 6
    t_mul = p["mul_6limbs"][clock] / 6
    t_add = p["add_6limbs"][clock] / 6
    out = {}
    phase_of = {ph: label for label, phases in PHASES for ph in phases}
    for label, _ in PHASES:
        out[label] = collections.Counter()
    for row in counts["ring"]:
        label = phase_of.get(row["phase"], "step bookkeeping")
        c = out[label]
        c["calls"] += row["calls"] / n
        c["ntts"] += row["ntts"] / n
        c["modmuls"] += row["modmuls"] / n
        c["bytes"] += row["bytes"] / n
        if row["method"] == "keyswitch":
            c[f"ks@{row['limbs']}"] += row["calls"] / n
            c["keyswitches"] += row["calls"] / n
        if row["method"] in ("rescale", "drop_special"):
            c["rescales"] += row["calls"] / n * (row["extra"] or 1)
        c["ring_cpu"] += row["cpu"] / n
        c["ring_wall"] += row["seconds"] / n
        c["replay"] += row["calls"] * _unit(units, row, clock) / n
        # The three-primitive model: NTTs, element-wise products, element-wise additions (one limb each).
        prod_limbs = max(row["modmuls"] - row["ntts"] * _ntt_mm(counts), 0) / counts["params"]["poly_degree"]
        add_limbs = row["calls"] * row["limbs"] if row["method"] in ADD_METHODS else 0
        c["prim"] += (row["ntts"] * t_ntt + prod_limbs * t_mul + add_limbs * t_add) / n
    for label, phases in PHASES:
        c = out[label]
        c["phase_cpu"] = sum(counts["phase_cpu"].get(ph, 0.0) for ph in phases) / n
        c["phase_wall"] = sum(counts["phase_seconds"].get(ph, 0.0) for ph in phases) / n
        c["rng"] = sum(counts["rng_seconds"].get(ph, 0.0) for ph in phases) / n
        c["encode"] = sum(counts["encode_seconds"].get(ph, 0.0) for ph in phases) / n
        c["rounds"] = sum(1 for r in counts["rounds"] if r.get("asked_by") in phases) / n
        c["sent"] = sum(r["sent"] for r in counts["rounds"] if r.get("asked_by") in phases) / n
        c["received"] = sum(r["received"] for r in counts["rounds"] if r.get("asked_by") in phases) / n
    return out


def _ntt_mm(counts: dict) -> int:
    n = counts["params"]["poly_degree"]
    return (n // 2) * (n.bit_length() - 1)


def _ms(x: float) -> str:
    return f"{1e3 * x:.2f}"


def render(counts: dict, units: dict, clock: str = "cpu") -> str:
    rows = per_phase(counts, units, clock)
    n = counts["reviews"]
    lines = [f"{n} reviews counted (after {counts['warmup']} warm-up reviews); N = {counts['params']['poly_degree']}, "
             f"q bits {counts['params']['q_bits']}, special {counts['params']['p_bits']}; W01: "
             f"{counts['table']['rows']} rows in {counts['table']['ciphertexts']} ciphertexts of "
             f"{counts['table']['rows_per_ct']} rows at {counts['table']['limbs']} limbs; a review names "
             f"{counts['table']['words_mean']:.1f} distinct words in {counts['table']['touched_mean']:.2f} of them.", "",
             "| phase | ring calls | NTTs (1 limb) | modmuls | key switches (at limbs) | rescales | operand MB | "
             "refresh rounds | sent KB | received KB |", "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    tot = collections.Counter()
    for label, c in rows.items():
        ks = ", ".join(f"{c[k]:.2f}@{k[3:]}" for k in sorted(c) if k.startswith("ks@"))
        lines.append(f"| {label} | {c['calls']:.1f} | {c['ntts']:.1f} | {c['modmuls'] / 1e6:.2f} M | {ks or '-'} | "
                     f"{c['rescales']:.2f} | {c['bytes'] / 1e6:.1f} | {c['rounds']:.3f} | {c['sent'] / 1e3:.0f} | "
                     f"{c['received'] / 1e3:.0f} |")
        tot.update(c)
    lines.append(f"| **total** | {tot['calls']:.1f} | {tot['ntts']:.1f} | {tot['modmuls'] / 1e6:.2f} M | "
                 f"{tot['keyswitches']:.2f} | {tot['rescales']:.2f} | {tot['bytes'] / 1e6:.1f} | {tot['rounds']:.3f} | "
                 f"{tot['sent'] / 1e3:.0f} | {tot['received'] / 1e3:.0f} |")
    lines += ["", f"Per review, ms of thread CPU time ({clock} medians for the units):", "",
              "| phase | 3-primitive model | replayed calls | ring calls in the run | phase in the run | "
              "of which randomness | of which encoder |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label, c in rows.items():
        lines.append(f"| {label} | {_ms(c['prim'])} | {_ms(c['replay'])} | {_ms(c['ring_cpu'])} | "
                     f"{_ms(c['phase_cpu'])} | {_ms(c['rng'])} | {_ms(c['encode'])} |")
    m = counts["measured"]
    lines.append(f"| **total** | {_ms(tot['prim'])} | {_ms(tot['replay'])} | {_ms(tot['ring_cpu'])} | "
                 f"{_ms(tot['phase_cpu'])} | {_ms(tot['rng'])} | {_ms(tot['encode'])} |")
    lines += ["", f"Measured: {m['reviews_per_s_cpu']:.2f} reviews/s of CPU time ({_ms(m['step_cpu'] / n)} ms per "
              f"review), {m['reviews_per_s_steps']:.2f} reviews/s of wall time; {m['refresh_rounds'] / n:.3f} refresh "
              f"rounds and {m['bytes_exchanged'] / n / 1e6:.3f} MB per review "
              f"({m['bytes_exchanged'] / max(m['refresh_rounds'], 1) / 1e6:.3f} MB per round)."]
    return "\n".join(lines)


def _call_unit(units: dict, method: str, limbs: int, clock: str) -> float:
    for u in units["calls"]:
        if u["method"] == method and u["limbs"] == limbs:
            return u[clock]
    raise KeyError((method, limbs))


def floor(counts: dict, units: dict, clock: str = "cpu") -> dict:
    """What a review's gather and scatter over the coefficient-packed table cost whatever batching does.

    Per table ciphertext a review touches: the NTT form of its shift polynomial
    ``sum_r count_r X^(-stride r)`` (``from_signed`` + NTT at the table's limbs), two
    plaintext-ciphertext multiply-adds for the gather, the permutation X -> X^-1 of the
    same polynomial and two multiply-adds for the scatter. Nothing of it depends on
    another review, so no packing of a batch shares it.
    """
    t = counts["table"]
    nl = t["limbs"]
    touched = t["touched_mean"]
    u = {m: _call_unit(units, m, nl, clock) for m in ("from_signed", "ntt", "muladd", "permute")}
    gather = touched * (u["from_signed"] + u["ntt"] + 2 * u["muladd"])
    scatter = touched * (u["permute"] + 2 * u["muladd"])
    plaintext = touched * (u["from_signed"] + u["ntt"])  # the shift polynomials: known before training
    n = counts["params"]["poly_degree"]
    ceiling = units.get("ceiling", {})
    at_peak = None
    if "shoup" in ceiling:  # NTT butterflies at the Shoup rate, element-wise products at the Barrett rate
        at_peak = touched * nl * (_ntt_mm(counts) / ceiling["shoup"] + 4 * n / ceiling["barrett"])
    return {"touched": touched, "limbs": nl, "units": u, "gather": gather, "scatter": scatter, "at_peak": at_peak,
            "plaintext": plaintext, "ciphertext": gather + scatter - plaintext,
            "ceiling": ceiling,
            "total": gather + scatter, "reviews_per_s": 1.0 / (gather + scatter),
            "ntts": touched * nl, "modmuls": touched * nl * (_ntt_mm(counts) + 4 * counts["params"]["poly_degree"]),
            "keyswitch": {k: v[clock] for k, v in units["primitives"].items() if k.startswith("keyswitch_")}}


def render_floor(counts: dict, units: dict, clock: str = "cpu") -> str:
    f = floor(counts, units, clock)
    u = f["units"]
    return "\n".join([
        f"Floor per review at {f['limbs']} limbs, {f['touched']:.2f} table ciphertexts touched on average:",
        "",
        "| part | per touched ciphertext | per review (ms) |", "|---|---|---:|",
        f"| gather | from_signed {_ms(u['from_signed'])} + NTT {_ms(u['ntt'])} + 2 x muladd {_ms(u['muladd'])} ms | "
        f"{_ms(f['gather'])} |",
        f"| scatter (shift polynomial reused) | permute {_ms(u['permute'])} + 2 x muladd {_ms(u['muladd'])} ms | "
        f"{_ms(f['scatter'])} |",
        f"| **floor** | {f['ntts']:.1f} limb-NTTs, {f['modmuls'] / 1e6:.2f} M modmuls per review | "
        f"**{_ms(f['total'])}** |",
        "",
        f"Bound from the floor alone: {f['reviews_per_s']:.0f} reviews/s on one core."
        + (f" At the machine's measured modmul ceiling (Shoup {f['ceiling']['shoup']:.2e}/s for NTT butterflies, "
           f"Barrett {f['ceiling']['barrett']:.2e}/s for products) the same work takes {_ms(f['at_peak'])} ms: "
           f"{1 / f['at_peak']:.0f} reviews/s." if f["at_peak"] else "")
        + f" Plaintext part (shift polynomials) {_ms(f['plaintext'])} ms, ciphertext part {_ms(f['ciphertext'])} ms: "
          f"{1 / f['ciphertext']:.0f} reviews/s with the plaintext part off the core.",
        "", "Key switch at each level (ms): " + ", ".join(f"{k.split('_')[1]} limbs {_ms(v)}"
                                                     for k, v in sorted(f["keyswitch"].items())),
        "", _amortised(counts, f),
    ])


def _amortised(counts: dict, f: dict, batches=(1, 16, 64, 256, 1024)) -> str:
    """floor + (today's measured per-review CPU time outside gather and scatter) / B, for batch sizes B.

    Assumes a batched step of B reviews costs what one review's step costs today outside
    the gather and scatter (every dense value of a batch of B <= 1024 fits one ciphertext of
    8192 slots); the per-review clean update rows the scatter needs are not included.
    """
    n = counts["reviews"]
    total = counts["measured"]["step_cpu"] / n
    table = sum(counts["phase_cpu"].get(p, 0.0) for p in ("gather", "scatter")) / n
    rest = total - table
    rows = ["| reviews per batch B | ms per review: floor + rest / B | reviews/s |", "|---:|---:|---:|"]
    for b in batches:
        t = f["total"] + rest / b
        rows.append(f"| {b} | {_ms(f['total'])} + {_ms(rest / b)} = {_ms(t)} | {1 / t:.0f} |")
    return (f"Today a review costs {_ms(total)} ms of CPU in the run, {_ms(table)} ms of it in gather + scatter "
            f"(phases, Python included); the rest, {_ms(rest)} ms, is what batching could share:\n\n"
            + "\n".join(rows))
