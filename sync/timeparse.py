"""Hull times (ISO-8601, "… UTC", RFC 2822, unix seconds or milliseconds) → aware UTC datetimes."""
import math
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MIN_TIME = datetime.min.replace(tzinfo=timezone.utc)
_SECOND = timedelta(seconds=1)
_MILLISECOND = timedelta(milliseconds=1)
_MS_THRESHOLD = 1e11
_UTC_SUFFIXES = (" UTC", " GMT")


def parse_time(value) -> datetime | None:
    """Parse a Hull time into an aware UTC datetime; None when it is not a time. Never raises.

    Accepts ISO-8601 strings (with `Z`, an offset, a ` UTC` suffix or no time), RFC 2822
    strings, unix seconds as int/float (milliseconds when above 1e11) and datetimes.
    """
    if isinstance(value, datetime):
        return _as_utc(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return _parse_number(value)
    if isinstance(value, str):
        return _parse_string(value)
    return None


def _parse_number(value: float) -> datetime | None:
    """Unix seconds (or milliseconds, when large) as a UTC datetime."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        return EPOCH + timedelta(seconds=value / 1000 if abs(value) > _MS_THRESHOLD else value)
    except OverflowError:
        return None


def _parse_string(value: str) -> datetime | None:
    """An ISO-8601 or RFC 2822 string as a UTC datetime."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = _parse_loose(value)
    return None if parsed is None else _as_utc(parsed)


def _parse_loose(value: str) -> datetime | None:
    """The slower path: surrounding spaces, Hull's "… UTC" event times, RFC 2822 dates."""
    text = value.strip()
    if text.upper().endswith(_UTC_SUFFIXES):
        text = text[:-4].rstrip()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return _parse_rfc2822(text)


def _as_utc(moment: datetime) -> datetime | None:
    """The same instant in UTC; naive datetimes are taken as UTC."""
    if moment.tzinfo is timezone.utc:
        return moment
    try:
        return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None


def _parse_rfc2822(text: str) -> datetime | None:
    """Fallback for e-mail style dates ("Fri, 30 Mar 2018 14:38:02 GMT")."""
    if not text or not any(char.isalpha() for char in text):
        return None
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def to_unix(value) -> int | None:
    """Integer unix seconds of a Hull time (see `parse_time`), or None."""
    return unix_seconds(parse_time(value))


def unix_seconds(moment: datetime | None) -> int | None:
    """Whole unix seconds (floored) of an aware datetime."""
    return None if moment is None else (moment - EPOCH) // _SECOND


def unix_milliseconds(moment: datetime | None) -> int:
    """Whole unix milliseconds of an aware datetime, 0 when unknown."""
    return 0 if moment is None else (moment - EPOCH) // _MILLISECOND


def iso_utc(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and `Z`, the way Hull writes times."""
    moment = parse_time(moment) or EPOCH
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
