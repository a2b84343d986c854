"""henn.keyservice.endpoints: key service addresses, ``unix:PATH`` and ``tls://HOST:PORT`` only; plain TCP is
refused at parsing, with the forms that work in the message (listen and connect refuse it too)."""
from __future__ import annotations

import pytest

from henn.keyservice.transport import AddressError, listen, parse_endpoint

from .threads import quick_connect


@pytest.mark.parametrize("text, expected", [
    ("unix:/run/user/1000/henn/k.sock", ("unix", "/run/user/1000/henn/k.sock", "", 0)),
    ("/tmp/h/k.sock", ("unix", "/tmp/h/k.sock", "", 0)),
    ("k.sock", ("unix", "k.sock", "", 0)),
    ("relative/dir:80", ("unix", "relative/dir:80", "", 0)),
    ("tls://localhost:7000", ("tls", "", "localhost", 7000)),
    ("TLS://10.1.2.3:7000", ("tls", "", "10.1.2.3", 7000)),
    ("tls://[::1]:7000", ("tls", "", "::1", 7000)),
    ("tls://0.0.0.0:0", ("tls", "", "0.0.0.0", 0)),
])
def test_parse_endpoint_accepts_unix_and_tls(text, expected):
    a = parse_endpoint(text)
    assert (a.kind, a.path, a.host, a.port) == expected
    assert parse_endpoint(str(a)) == a  # the canonical form parses back


@pytest.mark.parametrize("text", ["127.0.0.1:7000", "localhost:7000", "0.0.0.0:7000", "[::1]:7000", "::1:7000",
                                  "tcp://127.0.0.1:7000", "ssl://host:1", "http://host:80"])
def test_plain_tcp_is_refused_with_the_forms_that_work(text):
    with pytest.raises(AddressError, match="only with mutual TLS") as info:
        parse_endpoint(text)
    assert "tls://HOST:PORT" in str(info.value) and "unix:" in str(info.value)
    assert isinstance(info.value, ValueError)  # callers that catch ValueError keep working


def test_listen_and_connect_refuse_plain_tcp():
    with pytest.raises(AddressError, match="mutual TLS"):
        listen("127.0.0.1:0")
    with pytest.raises(AddressError, match="mutual TLS"):
        quick_connect("localhost:7000")


@pytest.mark.parametrize("text, message", [("", "empty"), ("unix:", "empty"), ("/tmp/a\0b", "NUL"),
                                           ("/" + "d" * 200 + "/k.sock", "at most"),
                                           ("tls://host", "expected tls://"), ("tls://host:99999", "port"),
                                           ("tls://host:80/path", "expected tls://")])
def test_malformed_addresses_are_refused(text, message):
    with pytest.raises(AddressError, match=message):
        parse_endpoint(text)
