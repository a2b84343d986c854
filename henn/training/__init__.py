"""Training loops: each returns a history (one record per epoch or per N examples)."""
