"""Building blocks of the henn file format; the public API is :mod:`he_core.serialization`.

* :mod:`.container` — the binary envelope: magic, version, JSON header, named arrays, SHA-256 digest.
* :mod:`.tree` — turning key/ciphertext payload trees into JSON plus a list of arrays, and back.

See ``docs/formats.md`` for the byte layout.
"""
