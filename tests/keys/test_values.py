"""Key values: their shape and checksum, the mask, the vault, and the generated secret files."""

from __future__ import annotations

import math
import stat
import string
import threading
from pathlib import Path

import pytest

from gateway.keys.values import (
    PREFIX,
    VALUE_LENGTH,
    KeyVault,
    VaultError,
    mask,
    new_value,
    read_or_create_secret,
    read_or_create_token,
    well_formed,
)

BASE62 = string.digits + string.ascii_letters
SECRET = "vault-secret-0123456789abcdef"
# One well-formed value, fixed so that the checksum tests do not depend on a random draw.
SAMPLE = "cfezpaMq9WGIiTqJve6fbxV9jEHWkyrunii1XKbnS"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_value_shape() -> None:
    """A value is cfe followed by base62 characters, always of the same length."""
    values = [new_value() for _ in range(200)]

    assert PREFIX == "cfe"
    assert {len(value) for value in values} == {VALUE_LENGTH}
    assert all(value.startswith("cfe") for value in values)
    assert set("".join(value[3:] for value in values)) <= set(BASE62)


def test_new_value_unique() -> None:
    """Ten thousand fresh values are all different."""
    assert len({new_value() for _ in range(10_000)}) == 10_000


def test_new_value_holds_128_random_bits() -> None:
    """Enough positions vary over the whole base62 alphabet to carry at least 128 bits.

    Each position that takes nearly every base62 character across many values
    carries log2(62) bits; the checksum's first character only takes a few.
    """
    values = [new_value() for _ in range(2000)]

    random_positions = [
        index
        for index in range(len(PREFIX), VALUE_LENGTH)
        if len({value[index] for value in values}) >= 60
    ]

    assert len(random_positions) * math.log2(62) >= 128
    assert set("".join(values)) >= set(BASE62)


def test_well_formed_accepts_real_values() -> None:
    """Every value the gateway makes passes its own checksum."""
    assert all(well_formed(new_value()) for _ in range(1000))


def test_well_formed_refuses_every_single_substitution() -> None:
    """Changing any one character of a value to any other makes it fail the check."""
    accepted = [
        SAMPLE[:index] + other + SAMPLE[index + 1 :]
        for index in range(len(SAMPLE))
        for other in BASE62 + "-_ +/=é"
        if other != SAMPLE[index] and well_formed(SAMPLE[:index] + other + SAMPLE[index + 1 :])
    ]

    assert well_formed(SAMPLE)
    assert accepted == []


def test_well_formed_refuses_adjacent_swaps() -> None:
    """Swapping two neighbouring, different characters makes a value fail the check."""
    swapped = [
        SAMPLE[:index] + SAMPLE[index + 1] + SAMPLE[index] + SAMPLE[index + 2 :]
        for index in range(len(SAMPLE) - 1)
        if SAMPLE[index] != SAMPLE[index + 1]
    ]

    assert swapped and [value for value in swapped if well_formed(value)] == []


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("CFE" + SAMPLE[3:], id="upper-case prefix"),
        pytest.param("abc" + SAMPLE[3:], id="other prefix"),
        pytest.param(SAMPLE[3:], id="prefix missing"),
        pytest.param("cfe" + SAMPLE, id="prefix twice"),
        pytest.param(SAMPLE[:-1], id="one short"),
        pytest.param(SAMPLE + "0", id="one long"),
        pytest.param(SAMPLE + SAMPLE, id="doubled"),
        pytest.param(SAMPLE + "\n", id="trailing newline"),
        pytest.param(" " + SAMPLE[1:], id="leading space"),
        pytest.param("", id="empty"),
        pytest.param("cfe", id="prefix alone"),
        pytest.param("cfe" + "0" * (VALUE_LENGTH - 3), id="zeros"),
    ],
)
def test_well_formed_refuses_wrong_shape(value: str) -> None:
    """A wrong prefix, a wrong length or a stray character is refused."""
    assert not well_formed(value)


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("cfeAbCdEfGhIjKlMnOpQrStUvWxYz0123456mXN", "cfe****mXN"),
        ("abcdefgh", "abc****fgh"),
        (SAMPLE, SAMPLE[:3] + "****" + SAMPLE[-3:]),
    ],
)
def test_mask_first_and_last_three(value: str, masked: str) -> None:
    """The mask is the first three characters, four stars and the last three."""
    assert mask(value) == masked


def test_mask_hides_the_random_part() -> None:
    """A masked value holds none of the characters between its first and last three."""
    masked = mask(SAMPLE)

    assert masked == f"cfe****{SAMPLE[-3:]}"
    assert SAMPLE[3:-3] not in masked


def test_vault_lookup_hash_stable() -> None:
    """The same secret gives the same hash for a value, in any vault made from it."""
    assert KeyVault(SECRET).lookup_hash(SAMPLE) == KeyVault(SECRET).lookup_hash(SAMPLE)


def test_vault_lookup_hash_depends_on_value_and_secret() -> None:
    """Another value or another secret gives another hash; the hash is hex, not the value."""
    vault = KeyVault(SECRET)
    digest = vault.lookup_hash(SAMPLE)

    assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")
    assert digest != vault.lookup_hash(new_value())
    assert digest != KeyVault(SECRET + "x").lookup_hash(SAMPLE)
    assert SAMPLE not in digest


def test_vault_seal_round_trip() -> None:
    """A sealed value opens to itself, with the same key id, in another vault of the secret."""
    sealed = KeyVault(SECRET).seal(SAMPLE, "key-1")

    assert KeyVault(SECRET).open(sealed, "key-1") == SAMPLE


def test_vault_sealed_bytes_hide_the_value() -> None:
    """The sealed bytes hold neither the value nor its random part, and differ each time."""
    vault = KeyVault(SECRET)
    first, second = vault.seal(SAMPLE, "key-1"), vault.seal(SAMPLE, "key-1")

    for sealed in (first, second):
        assert SAMPLE.encode() not in sealed
        assert SAMPLE[3:].encode() not in sealed
    assert first != second


@pytest.mark.parametrize(
    ("secret", "key_id", "change"),
    [
        pytest.param(SECRET, "key-2", None, id="other key id"),
        pytest.param(SECRET, "", None, id="empty key id"),
        pytest.param(SECRET + "x", "key-1", None, id="other secret"),
        pytest.param(SECRET, "key-1", "flip", id="tampered byte"),
        pytest.param(SECRET, "key-1", "truncate", id="truncated"),
        pytest.param(SECRET, "key-1", "short", id="shorter than a nonce"),
        pytest.param(SECRET, "key-1", "empty", id="empty"),
    ],
)
def test_vault_open_refuses(secret: str, key_id: str, change: str | None) -> None:
    """Another key id, another secret or changed bytes raise VaultError."""
    sealed = KeyVault(SECRET).seal(SAMPLE, "key-1")
    changed = {
        None: sealed,
        "flip": sealed[:20] + bytes([sealed[20] ^ 1]) + sealed[21:],
        "truncate": sealed[:-1],
        "short": sealed[:5],
        "empty": b"",
    }[change]

    with pytest.raises(VaultError):
        KeyVault(secret).open(changed, key_id)


def test_secret_file_generated_owner_only(tmp_path: Path) -> None:
    """A missing secret is generated into a new 0700 folder, in a 0600 file."""
    path = tmp_path / "data" / "secret.key"

    secret = read_or_create_secret(path)

    assert len(secret) >= 43
    assert path.read_text(encoding="utf-8") == secret + "\n"
    assert (mode(path), mode(path.parent)) == (0o600, 0o700)
    assert sorted(p.name for p in path.parent.iterdir()) == ["secret.key"]


def test_secret_file_reused(tmp_path: Path) -> None:
    """A second call reads the same secret and leaves the file as it was."""
    path = tmp_path / "data" / "secret.key"
    first = read_or_create_secret(path)

    assert read_or_create_secret(path) == first
    assert read_or_create_secret(tmp_path / "data" / "other.key") != first
    assert mode(path) == 0o600


def test_secret_file_existing_is_read(tmp_path: Path) -> None:
    """An existing secret file is used as it is, surrounding whitespace trimmed."""
    path = tmp_path / "secret.key"
    path.write_text("  given-secret \n", encoding="utf-8")

    assert read_or_create_secret(path) == "given-secret"


def test_secret_file_empty_is_refused(tmp_path: Path) -> None:
    """An empty secret file is refused rather than used as an empty secret."""
    path = tmp_path / "secret.key"
    path.write_text("\n", encoding="utf-8")

    with pytest.raises(VaultError, match="is empty"):
        read_or_create_secret(path)


def test_secret_file_one_secret_for_concurrent_starts(tmp_path: Path) -> None:
    """Many callers racing to create the same secret all get the one that was written."""
    path = tmp_path / "data" / "secret.key"
    start = threading.Barrier(16)
    secrets: list[str] = []

    def read() -> None:
        start.wait()
        secrets.append(read_or_create_secret(path))

    threads = [threading.Thread(target=read) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(secrets) == 16
    assert set(secrets) == {path.read_text(encoding="utf-8").strip()}
    assert sorted(p.name for p in path.parent.iterdir()) == ["secret.key"]


def test_token_file_generated_then_reused(tmp_path: Path) -> None:
    """An admin token is generated once, owner-only, and reported as new only that time."""
    path = tmp_path / "data" / "admin-token"

    token, created = read_or_create_token(path)
    again, created_again = read_or_create_token(path)

    assert token.startswith("sgadm_") and len(token) >= 6 + 43
    assert (created, again, created_again) == (True, token, False)
    assert (mode(path), mode(path.parent)) == (0o600, 0o700)
