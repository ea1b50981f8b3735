"""Sign-in, sessions and CSRF for the review app, as pure functions of a secret.

The secret is derived from the review key: changing the key signs everyone out. A session
is a signed, expiring cookie naming the reviewer; a form carries a token bound to a random
nonce kept in its own cookie (double submit, signed), so a page of another origin can post
nothing: it can neither read the nonce nor compute the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

SESSION_COOKIE = "review_session"
CSRF_COOKIE = "review_csrf"
CSRF_FIELD = "csrf_token"
SESSION_SECONDS = 12 * 3600


def secret_from_key(review_key: str) -> bytes:
    return hashlib.sha256(b"trace-promoter review session\0" + review_key.encode()).digest()


def key_matches(given: str, review_key: str) -> bool:
    return hmac.compare_digest(given.encode(), review_key.encode())


def _mac(secret: bytes, text: str) -> str:
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


def signed(secret: bytes, payload: dict[str, Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload, sort_keys=True).encode()).decode()
    return f"{body}.{_mac(secret, body)}"


def unsigned(secret: bytes, token: str | None, now_s: float) -> dict[str, Any] | None:
    """The payload of a token this secret signed and that has not expired; else None."""
    if not token or "." not in token:
        return None
    body, mac = token.rsplit(".", 1)
    if not hmac.compare_digest(mac, _mac(secret, body)):
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(body.encode()))
    except ValueError:
        return None
    if not isinstance(payload, dict) or float(payload.get("exp", 0)) < now_s:
        return None
    return payload


def new_session(secret: bytes, reviewer: str, now_s: float) -> str:
    return signed(secret, {"reviewer": reviewer, "exp": now_s + SESSION_SECONDS})


def reviewer_of(secret: bytes, cookie: str | None, now_s: float) -> str | None:
    payload = unsigned(secret, cookie, now_s)
    reviewer = payload.get("reviewer") if payload else None
    return reviewer if isinstance(reviewer, str) and reviewer else None


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def csrf_token(secret: bytes, nonce: str) -> str:
    return _mac(secret, "csrf\0" + nonce)


def csrf_ok(secret: bytes, nonce: str | None, token: str | None) -> bool:
    return bool(nonce and token) and hmac.compare_digest(str(token), csrf_token(secret, str(nonce)))
