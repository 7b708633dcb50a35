"""Deterministic ULIDs for Customer.io event de-duplication.

Customer.io drops an event whose `id` (a ULID) it has already received. Deriving the
ULID from the Hull `event_id` means a re-sent Hull event always carries the same id,
so retries and replays never create duplicates. The 48-bit time part comes from the
event's own time, so the ids still sort chronologically.
"""
import hashlib

CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID_LENGTH = 26
MAX_TIMESTAMP_MS = (1 << 48) - 1

_DECODE = {char: index for index, char in enumerate(CROCKFORD_ALPHABET)}


def ulid_from_event_id(event_id: str, timestamp_ms: int | None) -> str:
    """Return the 26-character ULID for `event_id` at `timestamp_ms` (0 when unknown).

    The 80 random bits of a ULID are replaced by the first 80 bits of
    sha256(event_id), so the result is a pure function of its arguments. The
    timestamp is clamped to the 48 bits a ULID can hold.
    """
    timestamp = min(max(int(timestamp_ms or 0), 0), MAX_TIMESTAMP_MS)
    digest = hashlib.sha256(str(event_id).encode("utf-8", "surrogatepass")).digest()
    value = (timestamp << 80) | int.from_bytes(digest[:10], "big")
    return encode_base32(value)


def encode_base32(value: int) -> str:
    """Encode a 128-bit integer as 26 Crockford base32 characters (most significant first)."""
    chars = [""] * ULID_LENGTH
    for position in range(ULID_LENGTH - 1, -1, -1):
        chars[position] = CROCKFORD_ALPHABET[value & 0x1F]
        value >>= 5
    return "".join(chars)


def ulid_timestamp_ms(ulid: str) -> int:
    """Return the millisecond timestamp encoded in the first 10 characters of `ulid`."""
    value = 0
    for char in ulid[:10].upper():
        value = (value << 5) | _DECODE[char]
    return value
