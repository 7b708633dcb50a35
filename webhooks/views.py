"""HTTP endpoints for Hull and Customer.io. Each view: verify, persist, enqueue on commit, answer."""
import json
import logging
import re

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from connector.conf import setting
from connector.models import Connector
from sync.encoding import parse_json

from . import security
from .inbound import MalformedWebhook, parse_webhook
from .services import batch_store, notification_store, webhook_reject, webhook_store
from .status import status_check

logger = logging.getLogger(__name__)

SMART_NOTIFIER_MAX_BYTES = 10 * 1024 * 1024
FLOW_NEXT = {"type": "next", "size": 100, "in": 1000}
FLOW_RETRY = {"type": "retry", "size": 100, "in": 10000}
SECRET_KEY_NAMES = ("secret", "api_key", "token", "password", "signing_key")
MIN_REPLACEABLE_SECRET = 12


def _secret_values(value, found):
    """String values held under secret-looking keys, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and item and any(name in key.lower() for name in SECRET_KEY_NAMES):
                found.add(item)
            else:
                _secret_values(item, found)
    elif isinstance(value, list):
        for item in value:
            _secret_values(item, found)
    return found


def redact_secrets(text, body):
    """The raw notification with Hull's secret and our settings' keys blanked out, so none is stored.

    `configuration` and `connector` carry them; replacing their JSON-encoded values in the raw text
    is far cheaper than re-serializing a 100-message body.
    """
    secrets = _secret_values({"configuration": body.get("configuration"), "connector": body.get("connector")}, set())
    if any(len(secret) < MIN_REPLACEABLE_SECRET for secret in secrets):
        # A very short value could also match unrelated text; drop the two subtrees instead.
        return json.dumps({key: value for key, value in body.items() if key not in ("configuration", "connector")})
    for secret in secrets:
        text = text.replace(json.dumps(secret)[1:-1], "[redacted]")
    return text


# PostgreSQL text cannot hold NUL characters: escaped NULs (not escaped backslashes before "u0000")
# are dropped from bodies before they are parsed or stored.
ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


class BadRequest(Exception):
    """The request cannot be accepted; carries the HTTP status and a clear message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def read_json_body(request, max_bytes):
    """The raw body, its text and its parsed JSON object, or BadRequest (413/400) with a clear message."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > max_bytes:
        raise BadRequest(413, f"Body is {declared} bytes; the limit is {max_bytes}.")
    try:
        raw = request.body
    except RequestDataTooBig as err:
        raise BadRequest(413, f"Body is larger than {max_bytes} bytes.") from err
    if len(raw) > max_bytes:
        raise BadRequest(413, f"Body is {len(raw)} bytes; the limit is {max_bytes}.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadRequest(400, "Body must be UTF-8 encoded JSON.") from err
    if "\\u0000" in text:
        text = ESCAPED_NUL.sub(r"\1", text)
    try:
        parsed = parse_json(text)
    except (ValueError, RecursionError) as err:
        raise BadRequest(400, f"Body is not valid JSON: {str(err)[:200]}") from err
    if not isinstance(parsed, dict):
        raise BadRequest(400, "Body must be a JSON object.")
    return raw, text, parsed


def smart_notifier_reply(flow=FLOW_NEXT, status=200, errors=()):
    return Response({"flow_control": flow, "metrics": [], "errors": list(errors)}, status=status)


def _text(value, name, required=True):
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(400, f"'{name}' must be a non-empty string.")
    return value


class HullSmartNotifierView(APIView):
    """POST /hull/smart-notifier: Hull user:update notifications."""

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT,
                                                           401: OpenApiTypes.OBJECT, 413: OpenApiTypes.OBJECT,
                                                           503: OpenApiTypes.OBJECT})
    def post(self, request):
        try:
            return self._handle(request)
        except BadRequest as err:
            flow = FLOW_RETRY if err.status == 503 else FLOW_NEXT
            return smart_notifier_reply(flow, err.status, [{"code": err.status, "reason": str(err)}])
        except DatabaseError:
            logger.exception("smart-notifier: database unavailable")
            return smart_notifier_reply(FLOW_RETRY, 503, [{"code": 503, "reason": "Storage unavailable; retry."}])

    def _handle(self, request):
        _, text, body = read_json_body(request, SMART_NOTIFIER_MAX_BYTES)
        configuration = body.get("configuration")
        if not isinstance(configuration, dict):
            raise BadRequest(400, "'configuration' must be an object with id, organization and secret.")
        connector = self._authenticate(request, configuration, body)
        channel = _text(body.get("channel"), "channel")
        notification_id = _text(body.get("notification_id"), "notification_id")
        if channel != "user:update":
            return smart_notifier_reply()
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise BadRequest(400, "'messages' must be a list of objects.")
        if not isinstance(body.get("segments", []), list):
            raise BadRequest(400, "'segments' must be a list.")
        notification_store(connector, notification_id[:100], channel, redact_secrets(text, body), len(messages))
        return smart_notifier_reply()

    @staticmethod
    def _authenticate(request, configuration, body):
        connector_id = configuration.get("id")
        connector = (Connector.objects.filter(hull_id=connector_id).only("pk", "hull_secret").first()
                     if isinstance(connector_id, str) else None)
        if connector is None or not security.secrets_match(configuration.get("secret"), connector.hull_secret):
            raise BadRequest(401, "Unknown connector or wrong secret.")
        public_key = setting("HULL_SMART_NOTIFIER_PUBLIC_KEY", "")
        if public_key and not security.smart_notifier_signature_valid(
                public_key, request.headers.get("x-hull-smart-notifier-signature"), body.get("notification_id")):
            raise BadRequest(401, "Smart-notifier signature is missing or invalid.")
        return connector


WEBHOOK_MAX_BYTES = 2 * 1024 * 1024
JSON_CONTENT_TYPES = ("application/json", "text/json", "application/vnd.customerio+json")


def _json_content_type(request):
    content_type = (request.META.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
    return content_type in JSON_CONTENT_TYPES or content_type.endswith("+json")


class CustomerIOWebhookView(APIView):
    """POST /customerio/webhook/<token>: Customer.io reporting webhooks (legacy and current formats)."""

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT,
                                                           401: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT,
                                                           413: OpenApiTypes.OBJECT, 415: OpenApiTypes.OBJECT,
                                                           503: OpenApiTypes.OBJECT})
    def post(self, request, webhook_token):
        try:
            return self._handle(request, webhook_token)
        except BadRequest as err:
            return Response({"error": str(err)}, status=err.status)
        except DatabaseError:
            logger.exception("customer.io webhook: database unavailable")
            return Response({"error": "Storage unavailable; retry."}, status=503)

    def _handle(self, request, webhook_token):
        connector = None if "\x00" in webhook_token else Connector.objects.for_webhook(webhook_token)
        if connector is None:
            raise BadRequest(404, "Unknown webhook URL.")
        if not _json_content_type(request):
            raise BadRequest(415, "Content-Type must be application/json.")
        raw, text, payload = read_json_body(request, WEBHOOK_MAX_BYTES)
        signature_valid = None
        if connector.webhook_signing_key:
            signature_valid = self._signature_valid(request, connector, raw)
            if not signature_valid:
                webhook_reject(connector, text, payload, "Signature missing, wrong or outside the time tolerance.")
                raise BadRequest(401, "X-CIO-Signature is missing or invalid.")
        try:
            event = parse_webhook(payload, include_content=connector.forward_message_body)
        except MalformedWebhook as err:
            raise BadRequest(400, str(err)) from err
        created = webhook_store(connector, text, event, signature_valid)
        return Response({"status": "accepted" if created else "duplicate", "event_id": event.event_id})

    @staticmethod
    def _signature_valid(request, connector, raw):
        timestamp = request.headers.get("X-CIO-Timestamp", "")
        return (security.timestamp_fresh(timestamp, connector.webhook_timestamp_tolerance)
                and security.customerio_signature_valid(connector.webhook_signing_key, timestamp, raw,
                                                        request.headers.get("X-CIO-Signature", "")))


HULL_QUERY_CREDENTIALS = [
    OpenApiParameter("ship", str, description="Hull connector id"),
    OpenApiParameter("organization", str, description="Hull organization host"),
    OpenApiParameter("secret", str, description="Hull connector secret"),
]


def connector_from_query(request):
    """Hull's query-string credentials (?ship=&organization=&secret=) → Connector, or BadRequest 401."""
    ship, secret = request.query_params.get("ship"), request.query_params.get("secret")
    connector = Connector.objects.filter(hull_id=ship).first() if ship and "\x00" not in ship else None
    if connector is None or not security.secrets_match(secret, connector.hull_secret):
        raise BadRequest(401, "Unknown connector or wrong secret.")
    return connector


class HullStatusView(APIView):
    """GET|POST /hull/status: Hull's cron runs the status check; the result also goes to Hull."""

    @extend_schema(parameters=HULL_QUERY_CREDENTIALS, responses={200: OpenApiTypes.OBJECT, 401: OpenApiTypes.OBJECT})
    def get(self, request):
        return self._check(request)

    @extend_schema(parameters=HULL_QUERY_CREDENTIALS, request=None,
                   responses={200: OpenApiTypes.OBJECT, 401: OpenApiTypes.OBJECT})
    def post(self, request):
        return self._check(request)

    @staticmethod
    def _check(request):
        try:
            connector = connector_from_query(request)
            result = status_check(connector)
        except BadRequest as err:
            return Response({"status": err.status, "messages": [str(err)]}, status=err.status)
        except DatabaseError:
            logger.exception("hull status: database unavailable")
            return Response({"status": "error", "messages": ["Storage unavailable; retry."]}, status=503)
        return Response({"status": result.status, "messages": result.messages})


BATCH_MAX_BYTES = 64 * 1024


class HullBatchView(APIView):
    """POST /hull/batch: a user extract to download and process like user:update without events."""

    @extend_schema(parameters=HULL_QUERY_CREDENTIALS, request=OpenApiTypes.OBJECT,
                   responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT, 401: OpenApiTypes.OBJECT,
                              503: OpenApiTypes.OBJECT})
    def post(self, request):
        try:
            connector = connector_from_query(request)
            _, _, body = read_json_body(request, BATCH_MAX_BYTES)
            url = _text(body.get("url"), "url")
            if not url.startswith(("http://", "https://")):
                raise BadRequest(400, "'url' must be an http(s) URL.")
            if body.get("format", "json") != "json" or body.get("object_type", "user_report") != "user_report":
                raise BadRequest(400, "Only format 'json' with object_type 'user_report' is supported.")
            segment_id = request.query_params.get("segment_id", "")
            row = batch_store(connector, url, segment_id)
        except BadRequest as err:
            return Response({"error": str(err)}, status=err.status)
        except DatabaseError:
            logger.exception("hull batch: database unavailable")
            return Response({"error": "Storage unavailable; retry."}, status=503)
        return Response({"status": "accepted", "batch": row.notification_id})
