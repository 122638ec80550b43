"""Scrub API keys out of text before it is logged or stored.

Provider error messages can echo a (partly masked) key back, e.g. "Incorrect API key provided: sk-ab***yz".
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

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
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
