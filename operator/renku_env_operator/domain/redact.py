"""Credentials out of text that is logged: URL userinfo and credential-looking query values.

A URL may carry a password (`https://user:pass@host`) or a token in its query (a pre-signed
registry redirect's `X-Amz-Signature`, an `access_token`): the settings never echo URLs for
that reason, and every log line goes through `redact` (runner installs it for all loggers).
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://userinfo@ : userinfo cannot hold '/', '?', '#' or '@' (RFC 3986), nor spaces here.
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@\s]+@")

# Query (or fragment) parameters whose value is a credential: tokens, passwords, secrets,
# signatures (S3 and GCS pre-signed URLs, Azure SAS `sig`), API keys, OAuth codes.
_NAMES = (
    # Bounded repeats: unbounded ones backtrack quadratically on long runs of name characters.
    r"[\w.-]{0,64}(?:token|secret|passw(?:or)?d|pwd|signature|credential|api[_-]?key|auth)"
    r"[\w.-]{0,64}"
    r"|sig|key|code|session|jwt"
)
_PARAMETER = re.compile(
    rf"(?P<name>[?&#;](?:{_NAMES})=)[^&#;\s\"'<>]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with every URL's userinfo and credential query values replaced by ***."""
    if "=" not in text and "@" not in text:  # most log lines: nothing to do
        return text
    text = _USERINFO.sub(rf"\g<scheme>{MASK}@", text)
    return _PARAMETER.sub(rf"\g<name>{MASK}", text)
