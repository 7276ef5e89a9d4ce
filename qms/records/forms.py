"""Record forms (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from qms.core.i18n import _l
from qms.records.status import STATUS_LABELS, STATUSES


class UnitStatusForm(FlaskForm):
    status = SelectField(
        _l("New status"),
        choices=[SelectChoice(s, STATUS_LABELS[s]) for s in STATUSES],
        validators=[DataRequired()],
    )
    reason = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=2000)])
    password = PasswordField(
        _l("Your password (your signature)"), validators=[Optional(), Length(max=256)]
    )
