"""Client address -> country, offline. The address goes no further than this module.

The address is read from REMOTE_ADDR, or from X-Forwarded-For when the request came through one of
the TRUSTED_PROXIES. Callers get a country code (ISO 3166 alpha-2, or "") and an opaque token for
rate limiting; neither can be turned back into the address.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from functools import cache

import maxminddb
from django.conf import settings

logger = logging.getLogger(__name__)


@cache
def _trusted_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in settings.TRUSTED_PROXIES if p.strip())


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _is_trusted(address) -> bool:
    return any(address in network for network in _trusted_networks())


def _client_address(meta) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The nearest address that is not one of our own proxies."""
    address = _parse(meta.get("REMOTE_ADDR", ""))
    if address is None or not _is_trusted(address):
        return address
    for hop in reversed(meta.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        parsed = _parse(hop)
        if parsed is None:
            return None  # a proxy we trust passed on garbage: better no country than a wrong one
        if not _is_trusted(parsed):
            return parsed
        address = parsed
    return address


@cache
def _reader():
    path = settings.GEOIP_DATABASE
    try:
        return maxminddb.open_database(path)
    except (OSError, maxminddb.InvalidDatabaseError):
        logger.warning("GeoIP database %s could not be opened: countries will be unknown", path)
        return None


def _country_in(record) -> str:
    if not isinstance(record, dict):
        return ""
    # MaxMind's GeoIP2/GeoLite2 layout, then the flat layout of the bundled database.
    for container in (record.get("country"), record.get("registered_country"), record):
        if isinstance(container, dict):
            code = container.get("iso_code") or container.get("country_code")
            if isinstance(code, str) and len(code) == 2 and code.isalpha():
                return code.upper()
    return ""


def country_of(meta) -> str:
    """The ISO alpha-2 country of the request's client, or "" when unknown."""
    address = _client_address(meta)
    reader = _reader()
    if address is None or reader is None:
        return ""
    try:
        return _country_in(reader.get(str(address)))
    except ValueError:
        return ""


def client_token(meta) -> str:
    """A keyed digest of the client address: stable enough to rate-limit, useless to identify."""
    address = _client_address(meta)
    raw = str(address) if address else "unknown"
    return hmac.new(settings.SECRET_KEY.encode(), raw.encode(), hashlib.sha256).hexdigest()[:32]
