"""Check two findings of the cost model without changing the library: ``python -m benchmarks.costmodel.findings``.

1. A public-key encryption of zero computed over (q_0..q_{l-1}, P) only equals the full
   Q*P one restricted to its first l limbs, from the same draws (so ``_apply_mask`` could
   compute 3 limbs instead of 7 and send the same bits).
2. Which ``_row_shifts`` calls miss the one-entry cache within a training step (the
   scatter recomputes what the gather made because the backward's row sum evicts it).

Uses private scheme methods on purpose: it checks their behaviour, it is not an API.
"""
import warnings
import numpy as np
import he_core
from he_core import SeededRandom
from he_core.schemes.ckks import keys as keygen
from he_core.schemes.ckks.ring import RnsRing
from henn.tasks import sentiment as T

warnings.simplefilter("ignore", he_core.SecurityWarning)
scheme, holder = T.setup("ckks", 8)
r = scheme.ring
public = scheme.public_keys.data["pk"]
nq, k = len(r.q), len(r.p)
full = scheme._public_zero(public, SeededRandom(7))
for nl in (2, 3):
    sub = RnsRing(r.n, r.q[:nl], r.p)
    rng = SeededRandom(7)
    v = keygen.sample_ephemeral(scheme.params, rng)
    idx = list(range(nl)) + list(range(nq, nq + k))
    pk0 = np.ascontiguousarray(public[0][idx]); pk1 = np.ascontiguousarray(public[1][idx])
    vv = sub.ntt(sub.from_signed(v, nl, special=True), special=True)
    def err():
        e = rng.gaussian(scheme.params.sigma, r.n)
        return sub.ntt(sub.from_signed(e, nl, special=True), special=True)
    c0 = sub.add(sub.mul(pk0, vv), err()); c1 = sub.add(sub.mul(pk1, vv), err())
    z0, z1 = sub.drop_special(c0), sub.drop_special(c1)
    print(f"public zero at {nl} limbs + P equals the full one's first {nl} limbs:",
          np.array_equal(z0, full[0][:nl]) and np.array_equal(z1, full[1][:nl]))

# 2: cache hits and misses of _row_shifts over a few training steps
from he_core.schemes.ckks import coeff
orig = coeff.CoeffTables.row_shifts
log = []
def traced(self, a, counts, *, down):
    cache = self._shift_cache
    key = (a.meta["stride"], a.data.shape[2], counts.tobytes())
    hit = key in cache  # an LRU of a few entries (one entry, keyed by "key", before the fix)
    log.append((a.rows, a.data.shape[2], "down" if down else "up", "hit" if hit else "miss"))
    return orig(self, a, counts, down=down)
coeff.CoeffTables.row_shifts = traced
from henn.data.imdb import load_imdb
d = T.prepare(load_imdb("/work/shared/data/imdb", "train"), validation=5000, limit=300, seed=0)
terms = T.terms_for(20000, 1, 8, vocab=len(d.vocab))
scheme, holder = T.setup("ckks", 8, terms=terms)
model = T.build_model(scheme, *T.init_weights(len(d.vocab), T.SentimentConfig()))
T.train(model, holder, d.train_ids[:3], d.train_labels[:3], T.SentimentConfig(), monitor_every=None)
for entry in log[-5:]:
    print("rows %d, %d limbs, %s: %s" % entry)
