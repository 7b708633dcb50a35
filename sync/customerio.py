"""Customer.io Track API client: v2 batches split to the API's byte limits, paced per workspace."""
import logging
import time
from dataclasses import dataclass

from .encoding import compact_json
from .exceptions import CredentialsRejected, PermanentAPIError, RetryableAPIError
from .http import send_with_retries
from .ratelimit import rate_limiter

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 500 * 1024
MAX_OPERATION_BYTES = 32 * 1024
MAX_OPERATIONS_PER_REQUEST = 1000
_ENVELOPE = len(b'{"batch":[]}')


def _encode(value):
    return compact_json(value)


@dataclass
class OperationResult:
    """What became of one operation of a batch."""

    ok: bool
    error: str = ""
    retryable: bool = False
    status: int | None = None
    duration_ms: int | None = None


def pack_operations(encoded):
    """Group encoded operations into request bodies under the request limits.

    Returns a list of index lists; operations over MAX_OPERATION_BYTES are left out (caller fails them).
    """
    chunks, current, size = [], [], _ENVELOPE
    for index, op in enumerate(encoded):
        if len(op) > MAX_OPERATION_BYTES:
            continue
        if current and (size + len(op) + 1 > MAX_REQUEST_BYTES or len(current) >= MAX_OPERATIONS_PER_REQUEST):
            chunks.append(current)
            current, size = [], _ENVELOPE
        current.append(index)
        size += len(op) + 1
    if current:
        chunks.append(current)
    return chunks


class CustomerIOClient:
    """Talks to one workspace. Never logs credentials or payloads."""

    def __init__(self, base_url, site_id, api_key, rate_per_second, pace_key=None):
        self.base_url = base_url.rstrip("/")
        self._auth = (site_id, api_key)
        self._rate = max(1, int(rate_per_second))
        self._pace_key = pace_key or site_id

    def _pace(self):
        rate_limiter().acquire(self._pace_key, self._rate)

    def _send(self, method, path, body=None):
        headers = {"Content-Type": "application/json"}
        response = send_with_retries(method, f"{self.base_url}{path}", data=body, auth=self._auth, headers=headers,
                                     before_attempt=self._pace, what=f"Customer.io {method} {path.split('?')[0]}")
        if response.status_code == 401:
            raise CredentialsRejected("Customer.io rejected the Site ID / API key", status=401)
        return response

    def batch(self, operations):
        """Send v2 operations; returns one OperationResult per operation, in order.

        A failing request does not raise (except 401): its operations come back failed, retryable or not,
        and once a request is out of retries the remaining ones are not sent but marked retryable.
        """
        encoded = [_encode(op) for op in operations]
        results = [None] * len(operations)
        for index, op in enumerate(encoded):
            if len(op) > MAX_OPERATION_BYTES:
                results[index] = OperationResult(False, f"operation is {len(op)} bytes (max {MAX_OPERATION_BYTES})")
        gave_up = None
        for chunk in pack_operations(encoded):
            if gave_up is not None:
                for index in chunk:
                    results[index] = OperationResult(False, gave_up, retryable=True)
                continue
            gave_up = self._send_chunk(chunk, encoded, results)
        return results

    def _send_chunk(self, chunk, encoded, results):
        body = b'{"batch":[' + b",".join(encoded[i] for i in chunk) + b"]}"
        started = time.monotonic()
        try:
            response = self._send("POST", "/api/v2/batch", body)
        except RetryableAPIError as err:
            for index in chunk:
                results[index] = OperationResult(False, str(err), retryable=True, status=err.status)
            return str(err)
        elapsed = int((time.monotonic() - started) * 1000)
        item_errors = self._item_errors(response) if response.status_code in (200, 207) else {}
        for position, index in enumerate(chunk):
            if response.status_code >= 300 and response.status_code != 207:
                error = f"Customer.io answered {response.status_code}: {_error_text(response)}"
                results[index] = OperationResult(False, error, status=response.status_code, duration_ms=elapsed)
            elif position in item_errors:
                results[index] = OperationResult(False, item_errors[position], status=207, duration_ms=elapsed)
            else:
                results[index] = OperationResult(True, status=response.status_code, duration_ms=elapsed)
        return None

    @staticmethod
    def _item_errors(response):
        try:
            errors = response.json().get("errors") or []
        except (ValueError, AttributeError):
            return {}
        found = {}
        for item in errors:
            if isinstance(item, dict) and isinstance(item.get("batch_index"), int):
                text = "; ".join(str(item[k]) for k in ("reason", "field", "message") if item.get(k))
                found[item["batch_index"]] = text or "rejected by Customer.io"
        return found

    def anonymous_event(self, body):
        """POST /api/v1/events (v2 has no anonymous person identifier). Returns an OperationResult."""
        started = time.monotonic()
        try:
            response = self._send("POST", "/api/v1/events", _encode(body))
        except RetryableAPIError as err:
            return OperationResult(False, str(err), retryable=True, status=err.status)
        elapsed = int((time.monotonic() - started) * 1000)
        if response.status_code >= 300:
            return OperationResult(False, f"Customer.io answered {response.status_code}: {_error_text(response)}",
                                   status=response.status_code, duration_ms=elapsed)
        return OperationResult(True, status=response.status_code, duration_ms=elapsed)

    def region(self):
        """GET /api/v1/accounts/region: {"region", "url", "environment_id"}; raises on failure."""
        response = self._send("GET", "/api/v1/accounts/region")
        if response.status_code != 200:
            raise PermanentAPIError(f"Customer.io answered {_error_text(response)}", status=response.status_code)
        try:
            answer = response.json()
        except ValueError as err:
            raise PermanentAPIError("Customer.io answered with something that is not JSON", status=200) from err
        if not isinstance(answer, dict):
            raise PermanentAPIError("Customer.io answered with an unexpected JSON shape", status=200)
        return answer


def _error_text(response):
    """A short, payload-free description of an error response."""
    try:
        data = response.json()
    except ValueError:
        return response.reason or "error"
    if not isinstance(data, dict):
        return response.reason or "error"
    errors = data.get("errors") or (data.get("meta") or {}).get("errors") or []
    messages = [e.get("message") or e.get("reason") if isinstance(e, dict) else str(e) for e in errors]
    return "; ".join(m for m in messages if m)[:300] or response.reason or "error"
