"""The forms file: the shipped languages are complete, a custom file is validated with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.http.form_texts import TEXT_KEYS, FormTexts
from connectors.http.forms import FormSubmission, field_errors, kept_values
from pipeline.errors import ConfigError


def test_shipped_forms_speak_four_languages() -> None:
    texts = FormTexts.load()
    titles = {form: texts.texts(form)["title"] for form in ("default", "de", "fr", "es")}
    assert len(set(titles.values())) == 4 and texts.language("de") == "de"
    assert texts.texts("anything-else") == texts.texts("default")  # unknown ids use the default form
    assert all(set(TEXT_KEYS) <= set(texts.texts(f)) for f in titles)


def test_a_custom_file_overrides_texts_per_form(tmp_path: Path) -> None:
    shipped = (Path(__file__).parents[2] / "connectors/http/forms.yaml").read_text()
    path = tmp_path / "forms.yaml"
    kasse = "  kasse:\n    language: de\n    title: Wie war der Kauf?\n"
    path.write_text(shipped.replace("  de:\n    language: de\n", "  de:\n    language: de\n" + kasse, 1))
    texts = FormTexts.load(path)
    assert texts.texts("kasse")["title"] == "Wie war der Kauf?" and texts.texts("kasse")["submit"] == "Feedback senden"


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("forms: {default: {language: xx}}\nlanguages: {}\n", "language 'xx' is not under languages"),
    ("forms: {default: {language: en}}\nlanguages: {en: {title: Hi}}\n", "lacks the texts"),
    ("forms: [1\n", "cannot read"),
])
def test_a_bad_file_is_a_config_error_naming_the_variable(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "forms.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match="FEEDBACK_FORMS_FILE") as exc:
        FormTexts.load(path)
    assert message in str(exc.value)


def test_messages_are_plain_language_per_field() -> None:
    texts = FormTexts.load().texts("fr")
    with pytest.raises(ValidationError) as exc:
        FormSubmission.model_validate({"nps_score": "11", "email": "x@", "csat_score": "9"})
    errors = field_errors(exc.value, texts)
    assert errors == {"nps_score": texts["error_nps"], "email": texts["error_email"], "csat_score": texts["error_csat"]}
    with pytest.raises(ValidationError) as exc:
        FormSubmission.model_validate({"comment": "  ", "website": ""})
    assert field_errors(exc.value, texts) == {"nps_score": texts["error_score_or_comment"]}
    assert kept_values({"nps_score": "11", "website": "spam", "consent": True}) == {"nps_score": "11", "consent": "on"}
