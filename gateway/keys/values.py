"""Key values: how they are made, checked, masked, hashed for lookup and sealed at rest."""

from __future__ import annotations

import hmac
import os
import re
import secrets
import string
import zlib
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "cfe"
_ALPHABET = string.digits + string.ascii_letters
_BODY_LENGTH = 32  # 32 base62 characters hold 190 random bits.
_CHECK_LENGTH = 6  # base62 of a CRC-32 fits in 6 characters.
VALUE_LENGTH = len(PREFIX) + _BODY_LENGTH + _CHECK_LENGTH
_NONCE_LENGTH = 12
_SHAPE = re.compile(f"{PREFIX}[0-9A-Za-z]{{{_BODY_LENGTH + _CHECK_LENGTH}}}")


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), _CHECK_LENGTH)


def new_value() -> str:
    """A fresh key value: prefix, random body, checksum."""
    body = PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LENGTH))
    return body + _checksum(body)


def well_formed(value: str) -> bool:
    """True when the value has the key shape and its checksum matches.

    This is what lets a mistyped or made-up key be refused without a store lookup.
    """
    if _SHAPE.fullmatch(value) is None:
        return False
    body, check = value[:-_CHECK_LENGTH], value[-_CHECK_LENGTH:]
    return hmac.compare_digest(_checksum(body), check)


def mask(value: str) -> str:
    """The first three and last three characters, as the admin panel shows it."""
    return f"{value[:3]}****{value[-3:]}"


class KeyVault:
    """Hashes values for lookup and seals them for reveal, both from store.secret_key.

    Two subkeys are derived so that the lookup hash reveals nothing about the
    encryption key, and the key id is bound into each sealed value so a value
    cannot be moved to another key's row.
    """

    def __init__(self, secret: str) -> None:
        material = secret.encode("utf-8")
        self._lookup_key = self._derive(material, b"share-gateway lookup")
        self._aead = AESGCM(self._derive(material, b"share-gateway seal"))

    @staticmethod
    def _derive(material: bytes, info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(material)

    def lookup_hash(self, value: str) -> str:
        """The hex digest under which a key is found."""
        return hmac.digest(self._lookup_key, value.encode("utf-8"), "sha256").hex()

    def seal(self, value: str, key_id: str) -> bytes:
        """Encrypt a value for storage (AES-GCM, random nonce)."""
        nonce = os.urandom(_NONCE_LENGTH)
        return nonce + self._aead.encrypt(nonce, value.encode("utf-8"), key_id.encode("utf-8"))

    def open(self, sealed: bytes, key_id: str) -> str:
        """Decrypt a stored value; a wrong secret key raises VaultError."""
        try:
            plain = self._aead.decrypt(
                sealed[:_NONCE_LENGTH], sealed[_NONCE_LENGTH:], key_id.encode("utf-8")
            )
        except (InvalidTag, ValueError):
            raise VaultError("the key value cannot be decrypted with this secret key") from None
        return plain.decode("utf-8")


class VaultError(Exception):
    """A sealed value that this secret key cannot open."""


def read_or_create_secret(path: Path) -> str:
    """The secret in `path`, generated there with owner-only permissions if absent."""
    return _read_or_create(path, lambda: secrets.token_urlsafe(32))


def _read_or_create(path: Path, make: Callable[[], str]) -> str:
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    # SECURITY: the data folder holds the secret key and the store: owner only.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # SECURITY: the secret is written in full to a private temporary file, 0600 from
    # creation, then linked into place. os.link fails if the name exists, so two
    # processes starting at once agree on one secret, and none can read a half-written
    # (empty) file, as they could between an O_EXCL create and its write.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            value = make()
            handle.write(f"{value}\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return _read_secret(path)
        return value
    finally:
        temporary.unlink(missing_ok=True)


def _read_secret(path: Path) -> str:
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        # An empty secret would quietly seal keys under a guessable key: refuse it.
        raise VaultError(f"{path} is empty; delete it to have a new secret generated")
    return value


def read_or_create_token(path: Path) -> tuple[str, bool]:
    """An admin token kept in `path`, and whether it was just generated."""
    existed = path.exists()
    return _read_or_create(path, lambda: "sgadm_" + secrets.token_urlsafe(32)), not existed
