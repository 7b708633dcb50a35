"""Secrets at rest: Fernet (AES-128-CBC + HMAC) with key rotation via MultiFernet."""
import base64
import functools
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.db import models

from .conf import setting


class SecretDecryptionError(Exception):
    """A stored secret cannot be decrypted with any configured key."""


def _keys():
    configured = setting("FIELD_ENCRYPTION_KEY", "")
    if configured:
        return [k.strip().encode() for k in configured.split(",") if k.strip()]
    digest = hashlib.sha256(b"hull-customerio-field-encryption:" + setting("SECRET_KEY").encode()).digest()
    return [base64.urlsafe_b64encode(digest)]


def fernet():
    return MultiFernet([Fernet(key) for key in _keys()])


def encrypt(plaintext):
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token):
    try:
        return _decrypted(tuple(_keys()), token)
    except InvalidToken as err:
        raise SecretDecryptionError("A stored secret could not be decrypted; check FIELD_ENCRYPTION_KEY.") from err


@functools.lru_cache(maxsize=256)
def _decrypted(keys, token):
    """Every request and task reads its connector's secrets: each distinct ciphertext is decrypted once
    per process (keyed by the keys too, so a rotation is never served from a stale entry)."""
    return MultiFernet([Fernet(key) for key in keys]).decrypt(token.encode()).decode()


class EncryptedTextField(models.TextField):
    """Holds a secret encrypted in the database; Python code sees plaintext, "" means not set."""

    def from_db_value(self, value, expression, connection):
        if not value:
            return ""
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if not value:
            return ""
        return encrypt(value)
