"""Hull batch extracts: stream the newline-delimited JSON file and sync it in chunks, resumably."""
import json
import logging

import requests
from django.utils import timezone

from sync.encoding import parse_json
from sync.exceptions import RetryableAPIError, SyncError
from sync.http import http_session
from sync.services import hull_client, users_sync
from sync.tasks import writeback_schedule

from .models import HullNotification, InboxStatus
from .services import unexpected_reason

logger = logging.getLogger(__name__)

CHUNK_SIZE = 100
DOWNLOAD_TIMEOUT = 60


def extract_message(line, segment_names, extra_segment_id=""):
    """One extract line → a user:update message without events (as hull-node's handle-extract does)."""
    user = {key: value for key, value in line.items() if key not in ("segment_ids", "account")}
    listed = line.get("segment_ids")
    ids = [sid for sid in listed if isinstance(sid, str)] if isinstance(listed, list) else []
    if extra_segment_id and extra_segment_id not in ids:
        ids.append(extra_segment_id)
    user["segment_ids"] = ids
    segments = [{"id": sid, "name": segment_names.get(sid, sid)} for sid in ids]
    account = line.get("account") if isinstance(line.get("account"), dict) else {}
    return {"user": user, "segments": segments, "account": account, "events": []}


def _extract_lines(url, skip):
    """Yield parsed lines of the extract after the first `skip` ones; bad lines are logged and skipped."""
    try:
        response = http_session().get(url, stream=True, timeout=DOWNLOAD_TIMEOUT)
    except requests.RequestException as err:
        raise RetryableAPIError(f"Extract download failed: {type(err).__name__}") from err
    with response:
        if response.status_code >= 300:
            raise RetryableAPIError("Extract download failed", status=response.status_code)
        for number, raw in enumerate(response.iter_lines()):
            if number < skip or not raw.strip():
                continue
            try:
                line = parse_json(raw)
            except ValueError:
                logger.warning("Extract line %d is not JSON; skipped", number + 1)
                continue
            if isinstance(line, dict):
                yield line


def _chunks(lines):
    chunk = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= CHUNK_SIZE:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _batch_failed(row, reason):
    HullNotification.objects.filter(pk=row.pk).update(status=InboxStatus.FAILED, reason=reason,
                                                      processed_at=timezone.now())


def batch_process(row_id):
    """Process (or resume) a batch row; returns True when it should be retried later."""
    row = HullNotification.objects.select_related("connector").filter(
        pk=row_id, kind=HullNotification.Kind.BATCH, status__in=[InboxStatus.PENDING, InboxStatus.FAILED]).first()
    if row is None:
        return False
    HullNotification.objects.filter(pk=row.pk).update(attempts=row.attempts + 1)
    spec = json.loads(row.body)
    try:
        names = {s.get("id"): s.get("name") for s in hull_client(row.connector).segments()}
        for chunk in _chunks(_extract_lines(spec["url"], row.progress_done)):
            messages = [extract_message(line, names, spec.get("segment_id", "")) for line in chunk]
            summary = users_sync(row.connector, messages, source=f"notification:{row.pk}")
            if summary.writeback:
                writeback_schedule(row.connector_id)
            if summary.retry_reason:
                raise RetryableAPIError(f"Customer.io: {summary.retry_reason}")
            row.progress_done += len(chunk)
            HullNotification.objects.filter(pk=row.pk).update(progress_done=row.progress_done,
                                                              message_count=row.progress_done)
    except SyncError as err:
        _batch_failed(row, str(err))
        return err.retryable
    except Exception as err:  # noqa: BLE001 - whatever broke, support must see it on the row
        logger.exception("Batch %s failed unexpectedly", row.pk)
        _batch_failed(row, unexpected_reason(err))
        return False
    HullNotification.objects.filter(pk=row.pk).update(status=InboxStatus.DONE, reason="", processed_at=timezone.now())
    return False
