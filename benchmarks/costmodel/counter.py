"""Count the native ring calls of a training run and attribute them to phases (run-time wrappers only).

:class:`Counter` patches, for as long as it is active (``with Counter() as c:``), the
entry points of :class:`he_core.schemes.ckks.ring.RnsRing` and
:class:`he_core.schemes.ckks.keyswitch.KeySwitcher` (every call into the native ``_ckks``
kernels goes through one of them; key switches keep their recorded names ``keyswitch``,
``modup`` and ``keyswitch_hoisted``) and the henn-level entry points of one
training step, and restores them on exit. Nothing in the library is edited.

Phases (the innermost open phase gets a call):

* ``gather``: :meth:`henn.embedding.EmbeddingBag.forward_train` (a review's row sum);
* ``forward``: :meth:`henn.layers.Linear.forward_train` (the logit ``h . w12``);
* ``loss``: :meth:`henn.losses.PolyLogisticLoss.grad` (the degree-5 sigmoid and ``s(z) - y``);
* ``monitor``: the trainer's aggregate term (:meth:`PolyLogisticLoss.monitor_term` and
  ``henn.training.fit._Watch.add``);
* ``backward``: :meth:`Linear.backward_train`, :meth:`EmbeddingBag.backward_train` and
  :meth:`henn.optim.SGD.prepare` (the updates of ``w12`` and ``W01``);
* ``update_w12`` / ``scatter``: the in-place landing of the ``w12`` update and of the
  ``W01`` update (:meth:`EncTensor.index_add_` through ``henn.optim._scatter``);
* ``refresh``: :meth:`henn.keyholder.MaskedRefresh.refresh` on the trainer's side (mask,
  unmask), ``refresh_kh``: :meth:`KeyHolder.reencrypt` (the key holder's decryption and
  fresh encryption), ``release``: :meth:`KeyHolder.release`. A refresh round is also
  counted against the phase that asked for it.

Times are exclusive (a phase's time excludes the phases opened inside it), in wall-clock
and in thread CPU time (steadier on a shared machine). Besides the
ring calls, the time spent drawing randomness (``he_core.randomness.RandomSource``
methods) and in the CKKS encoder's FFTs is recorded per phase.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import time
from typing import Any, Callable

from he_core.schemes.ckks import encoder as ckks_encoder
from he_core.schemes.ckks.keyswitch import KeySwitcher
from he_core.schemes.ckks.ring import RnsRing
from he_core import randomness

from . import kernels

RING_METHODS = ("ntt", "intt", "add", "sub", "neg", "mul", "muladd", "mul_int", "mul_scalar_limb", "from_signed",
                "rescale", "drop_special", "permute", "base_conv")
SWITCH_METHODS = {"keyswitch": "key_switch", "modup": "mod_up", "keyswitch_hoisted": "key_switch_hoisted"}


def _limbs(ring: RnsRing, method: str, args: tuple, kwargs: dict) -> tuple[int, int, int]:
    """(limbs, alpha, extra) of a call, as :func:`kernels.work` wants them."""
    a = args[0]
    if method == "from_signed":
        nl = args[1] if len(args) > 1 else kwargs["nlimbs"]
        special = (args[2] if len(args) > 2 else kwargs.get("special", False))
        return nl + (len(ring.p) if special else 0), 1, 0
    if method == "mul_scalar_limb":
        return 1, 1, 0
    if method == "base_conv":
        return len(args[1]), 1, len(args[2])
    if method in ("keyswitch", "modup"):
        alpha = args[2] if method == "keyswitch" else args[1]
        return a.shape[0], int(alpha), 0
    if method == "keyswitch_hoisted":
        return a.shape[1] - len(ring.p), int(args[2]), 0
    if method == "drop_special":
        return a.shape[0], 1, len(ring.p)
    return a.shape[0], 1, 0


class Counter:
    """Counts per (phase, ring method, limbs); times per phase; refresh rounds and bytes per asking phase."""

    def __init__(self, bare: bool = False) -> None:
        self.bare = bare  # only time the steps (to measure what the counting itself costs)
        self.reset()
        self._saved: list[tuple[Any, str, Any]] = []
        self._stack: list[list] = []  # [name, start, child_seconds]
        self._in_ring = False
        self._in_rng = False
        self._in_enc = False

    def reset(self) -> None:
        self.calls: collections.Counter = collections.Counter()        # (phase, method, limbs, alpha, extra, N, np)
        self.ring_seconds: collections.Counter = collections.Counter()  # same key
        self.ring_cpu: collections.Counter = collections.Counter()      # same key, thread CPU time
        self.phase_seconds: collections.Counter = collections.Counter()
        self.phase_cpu: collections.Counter = collections.Counter()
        self.phase_entries: collections.Counter = collections.Counter()
        self.rng_seconds: collections.Counter = collections.Counter()
        self.encode_seconds: collections.Counter = collections.Counter()
        self.rounds: list[dict] = []
        self.steps = 0
        self.step_seconds = 0.0
        self.step_cpu = 0.0

    # ------------------------------------------------------------------ phases
    @property
    def phase(self) -> str:
        return self._stack[-1][0] if self._stack else "other"

    @contextlib.contextmanager
    def open(self, name: str):
        self._stack.append([name, time.perf_counter(), 0.0, time.thread_time(), 0.0])
        try:
            yield
        finally:
            nm, start, child, cstart, cchild = self._stack.pop()
            spent, cpu = time.perf_counter() - start, time.thread_time() - cstart
            self.phase_seconds[nm] += spent - child
            self.phase_cpu[nm] += cpu - cchild
            self.phase_entries[nm] += 1
            if self._stack:
                self._stack[-1][2] += spent
                self._stack[-1][4] += cpu

    # ------------------------------------------------------------------ patching
    def _patch(self, owner: Any, name: str, wrapper: Callable) -> None:
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        self._saved.append((owner, name, original))
        setattr(owner, name, wrapper(original))

    def _ring_wrapper(self, method: str, switcher: bool = False) -> Callable:
        def wrap(fn):
            @functools.wraps(fn)
            def counted(owner, *args, **kwargs):
                if self._in_ring:
                    return fn(owner, *args, **kwargs)
                ring = owner.ring if switcher else owner
                limbs, alpha, extra = _limbs(ring, method, args, kwargs)
                self._in_ring = True
                c0, t0 = time.thread_time(), time.perf_counter()
                try:
                    return fn(owner, *args, **kwargs)
                finally:
                    dt, dc = time.perf_counter() - t0, time.thread_time() - c0
                    self._in_ring = False
                    key = (self.phase, method, limbs, alpha, extra, ring.n, len(ring.p))
                    self.calls[key] += 1
                    self.ring_seconds[key] += dt
                    self.ring_cpu[key] += dc
            return counted
        return wrap

    def _phase_wrapper(self, name: str | Callable[..., str]) -> Callable:
        def wrap(fn):
            @functools.wraps(fn)
            def phased(*args, **kwargs):
                with self.open(name(*args) if callable(name) else name):
                    return fn(*args, **kwargs)
            return phased
        return wrap

    def _timed(self, bucket_name: str, flag: str) -> Callable:
        def wrap(fn):
            @functools.wraps(fn)
            def timed(*args, **kwargs):
                if getattr(self, flag):
                    return fn(*args, **kwargs)
                setattr(self, flag, True)
                t0 = time.thread_time()  # CPU time, as the phases' (the machine may be shared)
                try:
                    return fn(*args, **kwargs)
                finally:
                    getattr(self, bucket_name)[self.phase] += time.thread_time() - t0
                    setattr(self, flag, False)
            return timed
        return wrap

    def __enter__(self) -> "Counter":
        from henn import keyholder, optim
        from henn.embedding import EmbeddingBag
        from henn.layers import Linear
        from henn.losses import PolyLogisticLoss
        from henn.training import fit as fit_mod

        if self.bare:
            self._patch(fit_mod, "_step", self._step_wrapper)
            return self
        for m in RING_METHODS:
            self._patch(RnsRing, m, self._ring_wrapper(m))
        for recorded, m in SWITCH_METHODS.items():
            self._patch(KeySwitcher, m, self._ring_wrapper(recorded, switcher=True))
        self._patch(EmbeddingBag, "forward_train", self._phase_wrapper("gather"))
        self._patch(EmbeddingBag, "backward_train", self._phase_wrapper("backward"))
        self._patch(Linear, "forward_train", self._phase_wrapper("forward"))
        self._patch(Linear, "backward_train", self._phase_wrapper("backward"))
        self._patch(PolyLogisticLoss, "grad", self._phase_wrapper("loss"))
        self._patch(PolyLogisticLoss, "monitor_term", self._phase_wrapper("monitor"))
        self._patch(optim.SGD, "prepare", self._phase_wrapper("backward"))
        self._patch(fit_mod._Watch, "add", self._phase_wrapper("monitor"))
        self._patch(keyholder.KeyHolder, "release", self._phase_wrapper("release"))
        self._patch(optim, "_scatter", self._scatter_wrapper)
        self._patch(keyholder.MaskedRefresh, "refresh", self._refresh_wrapper)
        self._patch(keyholder.KeyHolder, "reencrypt", self._reencrypt_wrapper)
        self._patch(fit_mod, "_step", self._step_wrapper)
        for m in ("integers", "uniform_mod", "ternary", "gaussian", "normal", "bytes"):
            self._patch(randomness.RandomSource, m, self._timed("rng_seconds", "_in_rng"))
        for m in ("encode", "encode_many", "decode"):
            self._patch(ckks_encoder, m, self._timed("encode_seconds", "_in_enc"))
        return self

    def __exit__(self, *exc: Any) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()

    def _scatter_wrapper(self, fn):
        counter = self

        @functools.wraps(fn)
        def scatter(table, updates):
            land = fn(table, updates)
            name = "scatter" if table.rows > 1 else "update_w12"

            def landed():
                with counter.open(name):
                    land()
            return landed
        return scatter

    def _refresh_wrapper(self, fn):
        counter = self

        @functools.wraps(fn)
        def refresh(holder, x, **kwargs):
            asked_by = counter.phase
            with counter.open("refresh"):
                out = fn(holder, x, **kwargs)
            if counter.rounds and counter.rounds[-1].get("asked_by") is None:
                counter.rounds[-1]["asked_by"] = asked_by
            return out
        return refresh

    def _reencrypt_wrapper(self, fn):
        counter = self

        @functools.wraps(fn)
        def reencrypt(holder, masked, layout=None):
            with counter.open("refresh_kh"):
                fresh = fn(holder, masked, layout)
            counter.rounds.append({"asked_by": None, "sent": masked.nbytes, "received": fresh.nbytes,
                                   "sent_shape": list(masked.data.shape), "received_shape": list(fresh.data.shape)})
            return fresh
        return reencrypt

    def _step_wrapper(self, fn):
        counter = self

        @functools.wraps(fn)
        def step(*args, **kwargs):
            c0, t0 = time.thread_time(), time.perf_counter()
            with counter.open("step"):
                out = fn(*args, **kwargs)
            counter.step_seconds += time.perf_counter() - t0
            counter.step_cpu += time.thread_time() - c0
            counter.steps += 1
            if counter.on_step is not None:
                counter.on_step(counter)
            return out
        return step

    on_step: Callable[["Counter"], None] | None = None

    # ------------------------------------------------------------------ results
    def table(self) -> list[dict]:
        """One row per (phase, method, limbs, ...): calls, measured seconds and the counted work."""
        rows = []
        for key, calls in sorted(self.calls.items()):
            phase, method, limbs, alpha, extra, n, np_ = key
            w = kernels.work(method, n, limbs, np_=np_, alpha=alpha, extra=extra)
            rows.append({"phase": phase, "method": method, "limbs": limbs, "alpha": alpha, "extra": extra, "n": n,
                         "special": np_, "calls": calls, "seconds": self.ring_seconds[key], "cpu": self.ring_cpu[key],
                         **{k: v * calls for k, v in w.items()}})
        return rows
