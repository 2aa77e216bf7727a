"""The customer-hash key: what a usable key is, and the keys a deployment knows (rotation).

A ``customer_ref`` is ``c_<key id>_<HMAC-SHA256 of the address, 32 hex digits>``; the key id is
:func:`pipeline.schema.customer_key_id` (8 hex digits of a SHA-256 of the key: a fingerprint, not
the key). New references are made with the current key only (``FEEDBACK_CUSTOMER_HASH_KEY`` or the
file ``feedback up`` writes once into the data directory); former keys
(``FEEDBACK_CUSTOMER_HASH_KEYS``) are only used to find references made under them
(``feedback erase`` checks every key).
"""

from __future__ import annotations

#: The shortest accepted key, in bytes (HMAC-SHA256's block of entropy: 256 bits).
MIN_KEY_BYTES = 32
#: Words that mark a value copied from an example rather than generated.
PLACEHOLDER_WORDS = ("changeme", "change-me", "change_me", "replaceme", "replace-me", "replace_me",
                     "placeholder", "your-key", "your_key", "yourkey", "example", "secret", "test-key",
                     "testkey", "password", "default")
#: A random key of 32+ bytes has many distinct characters (hex: 16); fewer means a pattern.
MIN_DISTINCT_CHARS = 10
HOW_TO_MAKE = "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"


def key_weakness(key: bytes) -> str | None:
    """Why ``key`` cannot be a customer-hash key, or None when it can."""
    if len(key) < MIN_KEY_BYTES:
        return f"is {len(key)} bytes long; at least {MIN_KEY_BYTES} are needed"
    lowered = key.lower()
    word = next((w for w in PLACEHOLDER_WORDS if w.encode() in lowered), None)
    if word is not None:
        return f"looks like a placeholder (it contains {word!r})"
    if any(key == (key[:n] * (len(key) // n + 1))[: len(key)] for n in range(1, 17)):
        return "is a repeated character or word, not a random key"
    if len(set(key)) < MIN_DISTINCT_CHARS:
        return f"has fewer than {MIN_DISTINCT_CHARS} distinct characters, not a random key"
    return None


def check_key(key: bytes, where: str) -> bytes:
    """``key`` when it is usable; else ValueError naming ``where`` it came from and how to make one."""
    weakness = key_weakness(key)
    if weakness is not None:
        raise ValueError(f"the customer-hash key ({where}) {weakness}; {HOW_TO_MAKE}")
    return key
