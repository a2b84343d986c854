"""Models built from henn layers (XOR here; the sentiment model lives beside it)."""
