"""Training loops: each returns a history (one record per epoch or per N examples).

:mod:`.refresh` holds the scheme-agnostic refresh policy (refresh a ciphertext through
the key holder when its ``scheme.budget`` is too low for the next operation).
"""
