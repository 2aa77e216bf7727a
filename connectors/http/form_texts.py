"""The feedback forms' texts: per form a language and its overrides, read from a YAML forms file.

The shipped file (``connectors/http/forms.yaml``) holds English, German, French and Spanish;
``FEEDBACK_FORMS_FILE`` names another one. The file is validated when the service starts: a
language missing a text, a form naming an unknown language or an unknown text key is a
:class:`~pipeline.errors.ConfigError` that names the variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import ConfigError

SHIPPED = Path(__file__).with_name("forms.yaml")

#: Every text a language must define (the template and the error messages use each of them).
TEXT_KEYS = (
    "title", "lead", "how_to", "required", "optional", "nps_question", "nps_low", "nps_high",
    "csat_question", "csat_choose", "csat_5", "csat_4", "csat_3", "csat_2", "csat_1",
    "comment_question", "comment_placeholder", "email_label", "consent_label", "consent_hint", "submit",
    "errors_title", "thanks_title", "thanks_text", "thanks_contact", "more",
    "error_score_or_comment", "error_nps", "error_csat", "error_comment_long", "error_email",
    "error_consent_email", "error_field", "page_400", "page_408", "page_413", "page_429", "page_503",
)


class FormConfig(BaseModel):
    """One form: its language (a key of ``languages``) and any texts it overrides."""

    model_config = ConfigDict(extra="forbid")

    language: str = Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
    texts: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _texts_inline(cls, data: Any) -> Any:
        """Overrides may be written next to ``language`` (``title: ...``) instead of under ``texts``."""
        if isinstance(data, dict):
            inline = {k: v for k, v in data.items() if k in TEXT_KEYS}
            rest = {k: v for k, v in data.items() if k not in TEXT_KEYS}
            if inline:
                rest["texts"] = {**rest.get("texts", {}), **inline}
            return rest
        return data


class FormsFile(BaseModel):
    """The forms file. Guarantees: every language defines every key of :data:`TEXT_KEYS`, every form
    names a defined language and overrides only known keys, and a ``default`` form exists."""

    model_config = ConfigDict(extra="forbid")

    forms: dict[str, FormConfig]
    languages: dict[str, dict[str, str]]

    @model_validator(mode="after")
    def _complete(self) -> FormsFile:
        for code, texts in self.languages.items():
            missing = [k for k in TEXT_KEYS if not texts.get(k)]
            if missing:
                raise ValueError(f"language {code!r} lacks the texts {', '.join(missing)}")
        for form_id, form in self.forms.items():
            if form.language not in self.languages:
                raise ValueError(f"form {form_id!r}: language {form.language!r} is not under languages")
            unknown = sorted(set(form.texts) - set(TEXT_KEYS))
            if unknown:
                raise ValueError(f"form {form_id!r}: unknown texts {', '.join(unknown)}")
        if "default" not in self.forms:
            raise ValueError("a form named 'default' is needed (it serves every form id not listed)")
        return self


class FormTexts:
    """The texts of each form, resolved once: ``texts(form_id)`` is a complete dict of :data:`TEXT_KEYS`
    plus ``lang`` (the page's language), never missing a key."""

    def __init__(self, spec: FormsFile) -> None:
        self._forms = {
            form_id: {**spec.languages[form.language], **form.texts, "lang": form.language}
            for form_id, form in spec.forms.items()
        }

    @classmethod
    def load(cls, path: Path | None = None) -> FormTexts:
        """Read and validate ``path`` (default: the shipped file); ConfigError naming FEEDBACK_FORMS_FILE."""
        where = path or SHIPPED
        try:
            data = yaml.safe_load(where.read_text(encoding="utf-8"))
            return cls(FormsFile.model_validate(data))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"FEEDBACK_FORMS_FILE: cannot read {where}: {exc}") from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "file"
            raise ConfigError(f"FEEDBACK_FORMS_FILE: {where}: {loc}: {first['msg']}") from exc

    def texts(self, form_id: str) -> dict[str, str]:
        return self._forms.get(form_id) or self._forms["default"]

    def language(self, form_id: str) -> str:
        return self.texts(form_id)["lang"]
