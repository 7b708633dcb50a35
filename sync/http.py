"""HTTP plumbing shared by the Customer.io and Hull clients: sessions, retries, backoff."""
import email.utils
import logging
import random
import threading
import time

import requests

from connector.conf import setting

from .exceptions import RetryableAPIError

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 522, 524})
MAX_RETRY_AFTER = 60.0

_local = threading.local()


def http_session():
    """One keep-alive session per worker thread."""
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        _local.session = session
    return session


def retry_after_seconds(response):
    """Seconds asked by a Retry-After header (seconds or HTTP date), or None."""
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return min(max(parsed.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER)


def backoff_delay(attempt, response=None):
    """Full-jitter exponential backoff, or what Retry-After asks for."""
    asked = retry_after_seconds(response)
    if asked is not None:
        return asked
    base = float(setting("HTTP_BACKOFF_BASE", 0.5))
    cap = float(setting("HTTP_BACKOFF_MAX", 8.0))
    return random.uniform(0, min(cap, base * (2 ** attempt)))


def send_with_retries(method, url, *, before_attempt=None, what="request", **kwargs):
    """Send a request, retrying 429/5xx/timeouts/connection errors with backoff.

    Returns the response for any other status; raises RetryableAPIError once attempts run out.
    """
    attempts = int(setting("HTTP_MAX_ATTEMPTS", 4))
    kwargs.setdefault("timeout", float(setting("HTTP_TIMEOUT", 10.0)))
    last_error = None
    for attempt in range(attempts):
        if before_attempt is not None:
            before_attempt()
        response = None
        try:
            response = http_session().request(method, url, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as err:
            last_error = RetryableAPIError(f"{what} failed: {type(err).__name__}")
        else:
            if response.status_code not in RETRYABLE_STATUSES:
                return response
            last_error = RetryableAPIError(f"{what} failed", status=response.status_code, body=response.text)
        if attempt + 1 < attempts:
            delay = backoff_delay(attempt, response)
            logger.info("%s: %s, retrying in %.2fs (attempt %d/%d)", what, last_error, delay, attempt + 1, attempts)
            time.sleep(delay)
    raise last_error
