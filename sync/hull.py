"""Hull client: firehose writes (traits/track with per-user JWTs) and the organization REST API."""
import base64
import hashlib
import hmac
import json
import logging
import time
from datetime import datetime, timezone

from .encoding import compact_json
from .exceptions import CredentialsRejected, PermanentAPIError
from .http import send_with_retries

logger = logging.getLogger(__name__)

CLAIM_KEYS = ("id", "email", "external_id", "anonymous_id")
FIREHOSE_MAX_ITEMS = 100
FIREHOSE_MAX_BYTES = 4 * 1024 * 1024
JWT_HEADER = b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"  # base64url of {"alg":"HS256","typ":"JWT"}


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_claims(values):
    """Hull's asUser claims: only id, email, external_id and anonymous_id, non-empty."""
    return {key: values[key] for key in CLAIM_KEYS if values.get(key)}


class HullClient:
    """One Hull connector's credentials; sessions are shared per worker thread."""

    def __init__(self, connector_id, secret, organization_url, firehose_url):
        self.connector_id = connector_id
        self._secret = secret
        self.organization_url = organization_url.rstrip("/")
        self.firehose_url = firehose_url
        self._organization_host = organization_url.split("://", 1)[-1]
        self._signer = hmac.new(secret.encode(), digestmod=hashlib.sha256)

    def user_token(self, claims):
        """HS256 JWT signed with the connector secret, as hull-client's asUser() builds it.

        Signed here rather than with PyJWT: one token per user written back, and PyJWT's key
        checks cost more than the signature itself. The tests decode these tokens with PyJWT.
        """
        payload = {"iss": self.connector_id, "iat": int(time.time()), "io.hull.asUser": claims,
                   "io.hull.subjectType": "user"}
        if claims.get("id"):
            payload["sub"] = claims["id"]
        signing_input = JWT_HEADER + b"." + _b64url(compact_json(payload))
        signer = self._signer.copy()
        signer.update(signing_input)
        return (signing_input + b"." + _b64url(signer.digest())).decode()

    def traits_item(self, claims, traits, source="customerio"):
        body = {f"{source}/{key}" if source else key: value for key, value in traits.items()}
        return self._item("traits", claims, body)

    def track_item(self, claims, body):
        return self._item("track", claims, body)

    def _item(self, kind, claims, body):
        return {"type": kind, "headers": {"Hull-Access-Token": self.user_token(claims)}, "body": body,
                "timestamp": _now_iso()}

    def _headers(self):
        return {"Content-Type": "application/json", "Hull-App-Id": self.connector_id,
                "Hull-Access-Token": self._secret, "Hull-Organization": self._organization_host}

    def firehose(self, items):
        """POST items in batches; returns the number of requests. Raises on failure after retries."""
        requests_sent = 0
        for batch in _firehose_batches(items):
            now = json.dumps(_now_iso())
            body = '{"batch":[' + ",".join(batch) + f'],"timestamp":{now},"sentAt":{now}}}'
            response = send_with_retries("POST", self.firehose_url, data=body.encode(), headers=self._headers(),
                                         what="Hull firehose")
            requests_sent += 1
            self._raise_for(response, "Hull firehose")
        return requests_sent

    def put_status(self, status, messages):
        response = send_with_retries("PUT", f"{self.organization_url}/api/v1/{self.connector_id}/status",
                                     json={"status": status, "messages": messages}, headers=self._headers(),
                                     what="Hull status")
        self._raise_for(response, "Hull status")

    def segments(self):
        """The organization's user segments ([{id, name, ...}])."""
        response = send_with_retries("GET", f"{self.organization_url}/api/v1/users_segments",
                                     params={"limit": 500}, headers=self._headers(), what="Hull segments")
        self._raise_for(response, "Hull segments")
        return response.json()

    @staticmethod
    def _raise_for(response, what):
        if response.status_code == 401:
            raise CredentialsRejected(f"{what} rejected the connector credentials", status=401)
        if response.status_code >= 300:
            raise PermanentAPIError(f"{what} refused the request", status=response.status_code, body=response.text)


def _firehose_batches(items):
    """Items encoded once, grouped under the firehose's count and size limits."""
    batch, size = [], 0
    for item in items:
        encoded = compact_json(item).decode()
        if batch and (len(batch) >= FIREHOSE_MAX_ITEMS or size + len(encoded) > FIREHOSE_MAX_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(encoded)
        size += len(encoded)
    if batch:
        yield batch
