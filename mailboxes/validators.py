"""Reusable validators: a whole number within a range, stated the same way in the help text,
the error message and the HTML input's min and max."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.deconstruct import deconstructible
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _

PORT_MESSAGE = _("Enter a port number from %(min)s to %(max)s.")
MINUTES_MESSAGE = _("Enter a whole number of minutes from %(min)s to %(max)s.")
SECONDS_MESSAGE = _("Enter a whole number of seconds from %(min)s to %(max)s.")
NUMBER_MESSAGE = _("Enter a whole number from %(min)s to %(max)s.")


def _format(text: Any, params: dict[str, Any]) -> str:
    return str(text) % params


# Formatted when shown, so each page gets the text in its own language.
format_lazy_percent = lazy(_format, str)


@deconstructible
class RangeValidator:
    """A whole number from ``minimum`` to ``maximum``; the message names both ends."""

    code = "out_of_range"

    def __init__(self, minimum: int, maximum: int, message: Any = NUMBER_MESSAGE) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.message = message

    @property
    def params(self) -> dict[str, int]:
        return {"min": self.minimum, "max": self.maximum}

    def __call__(self, value: Any) -> None:
        if value is not None and not self.minimum <= value <= self.maximum:
            raise ValidationError(self.message, code=self.code, params=self.params)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RangeValidator)
            and (self.minimum, self.maximum) == (other.minimum, other.maximum)
            and str(self.message) == str(other.message)
        )

    def __hash__(self) -> int:
        return hash((self.minimum, self.maximum))

    def describe(self, text: Any) -> Any:
        """``text`` (with %(min)s and %(max)s) filled in with the range, translated when shown."""
        return format_lazy_percent(text, self.params)

    def limit(self, field: forms.IntegerField) -> None:
        """Make a form field check this range, say it in its errors and set the input's min and max.

        1. The form field's own bounds (0 for a PositiveIntegerField) give way to this validator,
           so every error names the whole range.
        2. Text that is not a whole number gets the same message.
        """
        field.min_value, field.max_value = self.minimum, self.maximum
        field.validators = [v for v in field.validators if not isinstance(v, MinValueValidator | MaxValueValidator)]
        field.validators.append(self)
        field.error_messages = {**field.error_messages, "invalid": self.describe(self.message)}
        field.widget.attrs.update({"min": self.minimum, "max": self.maximum})


def range_of(model_field: Any) -> RangeValidator | None:
    """The RangeValidator of a model field, if it has one."""
    return next((v for v in model_field.validators if isinstance(v, RangeValidator)), None)
