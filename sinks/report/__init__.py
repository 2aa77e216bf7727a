"""The customer-satisfaction report (``feedback report``): HTML with embedded charts, optionally PDF."""
