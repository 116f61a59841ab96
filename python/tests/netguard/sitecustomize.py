"""Loaded by the real-DSPy tests' workers (this directory is put on their
PYTHONPATH): refuses every network connection and name lookup that is not
loopback, and says so on stderr, so a test can assert that DSPy and litellm
never tried to reach the internet (a cost map, a tokenizer, telemetry)."""

import errno
import os
import socket

_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
_MARK = "pyvisor-netguard: blocked"


def _loopback(host):
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").lower()
    return host in _LOOPBACK_NAMES or host.startswith("127.") or host in ("::1", "0:0:0:0:0:0:0:1")


def _refuse(what):
    try:
        os.write(2, ("%s %s\n" % (_MARK, what)).encode("utf-8", "replace"))
    except OSError:
        pass
    raise OSError(errno.ENETUNREACH, "network access refused by the test guard: %s" % what)


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def _check(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        _refuse("connect to %r" % (address,))


def connect(self, address):
    _check(self, address)
    return _connect(self, address)


def connect_ex(self, address):
    _check(self, address)
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if not _loopback(host):
        _refuse("name lookup of %r" % (host,))
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo
