"""The e-mail connector's registration with the kernel (entry points in pyproject.toml)."""

from __future__ import annotations

from pipeline.plugins import Service


def _imap_configured() -> bool:
    from connectors.email.settings import imap_configured

    return imap_configured()


#: ``feedback up`` runs the IMAP connector only when FEEDBACK_IMAP_HOST is set.
SERVICE = Service(("connector", "email"), order=50, enabled=_imap_configured)
