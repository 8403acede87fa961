"""Identity URLs: ``http://<host>:<port>/<name>.xml``.

An idurl is both a node's name on the network and the place its identity document is
served from, so it is used as a dictionary key everywhere (identity cache, supplier
lists, packet ids). That is why parsing is strict and only accepts the one canonical
spelling: lowercase host, explicit port without leading zeros, no query, fragment,
user info or extra path. Two spellings of one node would otherwise be two nodes.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

NAME_RE = re.compile(r"[a-z0-9_-]{3,20}", re.ASCII)
# RFC 1123 labels; the host part of an idurl is short, so 253 is a generous cap.
_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
_PORT_RE = re.compile(r"[1-9][0-9]{0,4}", re.ASCII)
_SCHEME = "http://"
_SUFFIX = ".xml"


class IdurlError(ValueError):
    """An idurl (or a host:port inside it) is malformed; the message says what is wrong."""


class ParsedIdurl(NamedTuple):
    host: str
    port: int
    name: str


def valid_name(name: str) -> bool:
    """True for 3-20 chars of ``[a-z0-9_-]``: safe as a file name and as a URL path."""
    return isinstance(name, str) and NAME_RE.fullmatch(name) is not None


def valid_host(host: str) -> bool:
    """A lowercase DNS name, an IPv4 address or an IPv6 address (without brackets)."""
    if not isinstance(host, str) or not host or len(host) > 253:
        return False
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return host == host.lower()
    labels = host.split(".")
    if labels[-1].isdigit():
        # A numeric last label is never a DNS name: it must be a real IPv4 address.
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return all(_LABEL_RE.fullmatch(label) for label in labels)


def format_host_port(host: str, port: int) -> str:
    """``host:port`` with brackets around IPv6 hosts, as URLs need."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(netloc: str) -> tuple[str, int]:
    """Parse ``host:port`` or ``[v6]:port``; the host comes back without brackets."""
    if netloc.startswith("["):
        close = netloc.find("]")
        if close < 0 or netloc[close + 1 : close + 2] != ":":
            raise IdurlError(f"bad IPv6 host:port {netloc!r}: expected [address]:port")
        host, port_text = netloc[1:close], netloc[close + 2 :]
        if ":" not in host:
            raise IdurlError(f"brackets are only for IPv6 addresses, got {netloc!r}")
    else:
        host, sep, port_text = netloc.rpartition(":")
        if not sep:
            raise IdurlError(f"missing port in {netloc!r}: expected host:port")
    if not valid_host(host):
        raise IdurlError(f"bad host {host!r}: expected a lowercase DNS name or an IP address")
    if not _PORT_RE.fullmatch(port_text) or int(port_text) > 65535:
        raise IdurlError(f"bad port {port_text!r}: expected 1-65535 without leading zeros")
    return host, int(port_text)


def make_idurl(host: str, port: int, name: str) -> str:
    """Build the canonical idurl; raises IdurlError on a bad part rather than build junk."""
    host = host.lower()
    if not valid_host(host):
        raise IdurlError(f"bad host {host!r}: expected a DNS name or an IP address")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise IdurlError(f"bad port {port!r}: expected an integer 1-65535")
    if not valid_name(name):
        raise IdurlError(f"bad name {name!r}: expected 3-20 chars of a-z, 0-9, '-' and '_'")
    return f"{_SCHEME}{format_host_port(host, port)}/{name}{_SUFFIX}"


def parse_idurl(idurl: str) -> ParsedIdurl:
    """Split an idurl into (host, port, name), refusing anything but the canonical form."""
    if not isinstance(idurl, str):
        raise IdurlError(f"idurl must be a string, got {type(idurl).__name__}")
    if len(idurl) > 300:
        raise IdurlError("idurl is longer than 300 characters")
    if not idurl.startswith(_SCHEME):
        raise IdurlError(f"idurl {idurl!r} must start with {_SCHEME!r}")
    rest = idurl[len(_SCHEME) :]
    netloc, slash, path = rest.partition("/")
    if not slash:
        raise IdurlError(f"idurl {idurl!r} has no path: expected /<name>.xml")
    if "@" in netloc:
        raise IdurlError(f"idurl {idurl!r} must not carry user info")
    try:
        host, port = split_host_port(netloc)
    except IdurlError as exc:
        raise IdurlError(f"idurl {idurl!r}: {exc}") from exc
    if not path.endswith(_SUFFIX):
        raise IdurlError(f"idurl {idurl!r}: path must be /<name>.xml")
    name = path[: -len(_SUFFIX)]
    # Also rejects '/', '..', '%', '?' and '#': the name ends up as a file name on servers.
    if not valid_name(name):
        raise IdurlError(f"idurl {idurl!r}: bad name {name!r}, expected 3-20 chars of a-z, 0-9, '-' and '_'")
    return ParsedIdurl(host, port, name)


def is_idurl(idurl: str) -> bool:
    try:
        parse_idurl(idurl)
    except IdurlError:
        return False
    return True
