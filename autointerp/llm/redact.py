"""Scrub API keys out of text before it is logged or stored, and credentials out of base URLs.

Provider error messages can echo a (partly masked) key back, e.g. "Incorrect API key provided: sk-ab***yz".
"""

from __future__ import annotations

import base64
import re
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

# Anything that looks like a provider key: sk-..., sk-ant-..., with or without masking stars.
_KEY_PATTERN = re.compile(r"\b(sk|key|pk)-[A-Za-z0-9_\-*.]{6,}")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with every given secret and every key-shaped token replaced by [REDACTED]."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[REDACTED]")
    return _KEY_PATTERN.sub("[REDACTED]", text)


def safe_url(url: str | None) -> str | None:
    """A base URL without user:password and query string (either could carry a credential)."""
    if not url:
        return url
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, _host(parts), parts.path, "", ""))


def credentials_apart(url: str | None) -> tuple[str | None, dict[str, str]]:
    """A base URL without user:password, and the Basic Authorization header they stand for, which
    replaces the API key's header (as the SDKs' httpx2 transport did with such a URL: a server behind
    a password-protected proxy). aiohttp refuses credentials in a URL next to an Authorization header,
    and the SDKs always send one."""
    if not url:
        return url, {}
    parts = urlsplit(url)
    if parts.username is None:
        return url, {}
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    header = "Basic " + base64.b64encode(pair.encode()).decode()
    return urlunsplit(parts._replace(netloc=_host(parts))), {"Authorization": header}


def _host(parts: SplitResult) -> str:
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host
