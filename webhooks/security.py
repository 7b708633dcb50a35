"""Authenticity checks on raw request data, all in constant time."""
import hashlib
import hmac
import time

import jwt


def secrets_match(given, expected):
    """Constant-time comparison of two secrets; empty never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(str(given).encode(), str(expected).encode())


def customerio_signature_valid(signing_key, timestamp, body, signature):
    """X-CIO-Signature = hex HMAC-SHA256 of b"v0:<timestamp>:<raw body>" keyed with the signing key."""
    if not signature or not timestamp:
        return False
    expected = hmac.new(signing_key.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    given = signature.strip().lower()
    if given.startswith("v0="):
        given = given[3:]
    return hmac.compare_digest(given.encode(), expected.encode())


def timestamp_fresh(timestamp, tolerance_seconds, now=None):
    """True when tolerance is 0 (any age) or the timestamp is within ±tolerance of now."""
    if not tolerance_seconds:
        return True
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    return abs((now or time.time()) - sent) <= tolerance_seconds


def smart_notifier_signature_valid(public_key_pem, token, notification_id):
    """Hull's RS256 JWT in x-hull-smart-notifier-signature; its jti must equal the notification_id."""
    if not token:
        return False
    try:
        claims = jwt.decode(token, public_key_pem, algorithms=["RS256"], options={"verify_aud": False})
    except jwt.PyJWTError:
        return False
    return secrets_match(claims.get("jti"), notification_id)
