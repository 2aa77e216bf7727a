"""Sealing a consenting customer's e-mail address for the follow-up sink.

With consent ("You may contact me about this feedback") the address travels in the record's own
``contact`` field (never in ``attributes``): a Fernet token (AES-128-CBC with an HMAC-SHA256, from the
``cryptography`` package) under ``FEEDBACK_CONTACT_KEY``. The warehouse sink keeps it in the
``contacts`` table, still encrypted (never in the feedback row); the follow-up sink opens it only to
create a ticket. Without a key the form does not offer the checkbox, so it never promises a reply it
cannot give.
"""

from __future__ import annotations

from cryptography.fernet import Fernet
from pydantic import SecretStr

from pipeline.errors import ConfigError


class ContactSealer:
    """Encrypts addresses under the configured key. Guarantees: an address leaves the HTTP service only
    as a token that needs ``FEEDBACK_CONTACT_KEY`` to read; ``enabled`` is False without a key."""

    def __init__(self, key: SecretStr | None) -> None:
        self._fernet: Fernet | None = None
        if key is not None:
            try:
                self._fernet = Fernet(key.get_secret_value().encode())
            except ValueError as exc:
                raise ConfigError("FEEDBACK_CONTACT_KEY must be a Fernet key: 32 bytes in url-safe base64 "
                                  "(python -c 'from cryptography.fernet import Fernet; "
                                  "print(Fernet.generate_key().decode())')") from exc

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def seal(self, address: str) -> str:
        if self._fernet is None:
            raise RuntimeError("no FEEDBACK_CONTACT_KEY")
        return self._fernet.encrypt(address.strip().encode()).decode()
