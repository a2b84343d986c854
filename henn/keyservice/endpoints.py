"""Key service addresses: ``unix:PATH`` (or a bare path) and ``tls://HOST:PORT``, and nothing else.

Plain TCP is refused at parsing: anyone on the host (or the network) could talk to
the secret key's owner. :mod:`.transport` listens and connects on what is parsed here.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass

from .framing import AddressError

_SUN_PATH_MAX = 107 if sys.platform.startswith("linux") else 103
_FORMS = ("use tls://HOST:PORT (TCP with mutual TLS; see henn.keyservice.tls.make_pki) or a Unix socket: "
          "unix:/run/user/UID/henn/keys.sock or a bare path")


@dataclass(frozen=True)
class Address:
    """A parsed key service address: ``kind`` ``"unix"`` (``path``) or ``"tls"`` (``host``, ``port``)."""

    kind: str
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        return f"tls://[{self.host}]:{self.port}" if ":" in self.host else f"tls://{self.host}:{self.port}"


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)
_HOST_PORT = re.compile(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^\[\]:/@\s]+):(\d{1,5})")


def parse_endpoint(address: str | os.PathLike | Address) -> Address:
    """``unix:PATH``, a bare path, or ``tls://HOST:PORT`` (``[v6]:PORT``) -> :class:`Address`.

    Port 0 is accepted here (a listener then takes a free port); :func:`connect` refuses it.

    Raises:
        AddressError: empty, a NUL byte, a path too long for a socket, or anything
            that looks like plain TCP (``HOST:PORT``, ``tcp://``, another scheme).
    """
    if isinstance(address, Address):
        return address
    text = os.fsdecode(address) if isinstance(address, os.PathLike) else str(address)
    if text.startswith("unix:"):
        return _unix_address(text[5:], text)
    scheme = _SCHEME.fullmatch(text)
    if scheme and scheme.group(1).lower() == "tls":
        return _tls_address(scheme.group(2), text)
    if scheme or ("/" not in text and ":" in text):
        raise AddressError(f"cannot use key service address {text!r}: TCP is offered only with mutual TLS; {_FORMS} "
                           "(a socket file whose name has a colon: write unix:NAME)")
    return _unix_address(text, text)


def _unix_address(path: str, text: str) -> Address:
    if not path:
        raise AddressError(f"cannot use an empty key service address {text!r}; {_FORMS}")
    if "\0" in path:  # also Linux's abstract namespace, which has no permissions at all
        raise AddressError(f"cannot use key service address {text!r}: a NUL byte in a socket path")
    size = len(os.fsencode(path))
    if size > _SUN_PATH_MAX:
        raise AddressError(f"cannot use key service address {text!r}: a socket path may have at most "
                           f"{_SUN_PATH_MAX} bytes, this one has {size}; use a shorter directory")
    return Address("unix", path=path)


def _tls_address(rest: str, text: str) -> Address:
    m = _HOST_PORT.fullmatch(rest)
    if not m:
        raise AddressError(f"cannot use key service address {text!r}: expected tls://HOST:PORT or tls://[IPv6]:PORT")
    host, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    if int(port) > 65535:
        raise AddressError(f"cannot use key service address {text!r}: port must be 0 .. 65535")
    return Address("tls", host=host, port=int(port))
