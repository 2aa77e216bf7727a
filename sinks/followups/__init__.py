"""Closing the loop: consenting customers' contacts (encrypted) and follow-up tickets for detractors."""
