"""Credentials never leave a process in text: URIs are stripped of them before they are shown.

A tracking URI, a lock database URL or a DVC remote may carry a user and password
(``postgresql://mlflow:pw@db/mlflow``, ``https://user:token@host``) or a secret query parameter
(``?password=``, S3 presigned ``X-Amz-Signature=``). :func:`strip_credentials` is the one
function every printed message, log line, MLflow param or tag, Prefect artifact and summary file
goes through; it keeps the scheme, host, port, path and the harmless query parameters, so the
text still says where, but not as whom.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***"

# scheme://userinfo@  (userinfo up to the last "@" before the path, so an unescaped "@" inside
# a password is removed too)
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s?#\"']+)@")
# password=..., token=..., X-Amz-Signature=... in a query string or a libpq keyword DSN
_SECRET_PARAM = re.compile(
    r"(?P<key>(?<![A-Za-z0-9_.-])(?:password|passwd|pwd|secret|client_secret|token|access_token"
    r"|refresh_token|api_key|apikey|sig|signature|x-amz-signature|x-amz-credential"
    r"|x-amz-security-token|sas_token)=)(?P<value>[^&\s#\"']*)",
    re.IGNORECASE,
)


def strip_credentials(text: str, marker: bool = True) -> str:
    """``text`` with the user/password of every URI and every secret parameter replaced by ``***``.

    Args:
        text: a URI, or any message that may contain URIs.
        marker: keep ``***@`` where a user/password was (``False``: drop it, for links a
            browser opens and then asks for the login itself).

    Returns:
        The same text, e.g. ``postgresql://***@db:5432/mlflow`` for
        ``postgresql://mlflow:pw@db:5432/mlflow``; text without credentials is returned unchanged.
    """
    if not text or ("@" not in text and "=" not in text):
        return text
    text = _USERINFO.sub(lambda m: m.group("scheme") + (f"{REDACTED}@" if marker else ""), text)
    return _SECRET_PARAM.sub(lambda m: f"{m.group('key')}{REDACTED}", text)


def has_credentials(text: str) -> bool:
    """Whether ``text`` holds a URI user/password or a secret parameter."""
    return strip_credentials(text) != text


def strip_credentials_in(value: Any) -> Any:
    """``value`` with :func:`strip_credentials` applied to every string inside it (mappings,
    lists and tuples are walked; other values are returned as they are).
    """
    if isinstance(value, str):
        return strip_credentials(value)
    if isinstance(value, Mapping):
        return {k: strip_credentials_in(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(strip_credentials_in(v) for v in value)
    return value
