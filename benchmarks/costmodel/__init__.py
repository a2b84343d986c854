"""A cost model of IMDB training on ``ckks``, per review (issue #13, item 1).

Counts, not guesses: :mod:`.counter` wraps the native entry points of
:class:`he_core.schemes.ckks.ring.RnsRing` at run time and attributes every call to the
training phase that made it (gather, forward, loss, backward, scatter, refresh, ...);
:mod:`.units` measures what one primitive costs on this machine; :mod:`.report` turns
the counts into a predicted time per review and sets it beside the measured one.

Never imported by the installed package. Run::

    python -m benchmarks.costmodel count --limit 200 --json counts.json
    taskset -c 1 python -m benchmarks.costmodel units --json units.json
    python -m benchmarks.costmodel report counts.json units.json
"""
