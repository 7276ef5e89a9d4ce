"""Account forms (Flask-WTF: every form carries a CSRF token).

Labels and our own messages are lazy (`_l`): the form classes are built at import time
and shown later in the reader's language. WTForms' own messages ("This field is
required.") come translated from WTForms' catalogs through Flask-WTF.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length

from qms.accounts.roles import Role
from qms.core.i18n import LANGUAGE_NAMES, LANGUAGES, _l


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=256)])


class UserCreateForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    full_name = StringField(
        _l("Full name (printed on signatures)"), validators=[DataRequired(), Length(max=200)]
    )
    role = SelectField(_l("Role"), choices=[SelectChoice(r.value, r.label) for r in Role])
    sites = SelectMultipleField(
        _l("Sites"), validators=[DataRequired(message=_l("Choose at least one site."))]
    )
    password = PasswordField(_l("Initial password"), validators=[DataRequired(), Length(max=256)])
    email = StringField(
        _l("Email address (optional: reminders and alerts are mailed there)"),
        validators=[Length(max=254)],
    )
    reason = StringField(
        _l("Reason"), default=_l("new account"), validators=[DataRequired(), Length(max=500)]
    )


class EmailForm(FlaskForm):
    """An account's mail address (empty: none), with the reason the trail keeps."""

    email = StringField(_l("Email address (leave empty for none)"), validators=[Length(max=254)])
    reason = StringField(
        _l("Reason"),
        validators=[DataRequired(message=_l("A reason is required.")), Length(max=500)],
    )


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField(
        _l("Current password"), validators=[DataRequired(), Length(max=256)]
    )
    new_password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=256)])
    repeat = PasswordField(
        _l("New password again"),
        validators=[
            DataRequired(),
            EqualTo("new_password", message=_l("The two new passwords differ.")),
        ],
    )


class PasswordResetForm(FlaskForm):
    new_password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=256)])
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=500)])


class ReasonForm(FlaskForm):
    reason = TextAreaField(
        _l("Reason"),
        validators=[DataRequired(message=_l("A reason is required.")), Length(max=500)],
    )


# The user has not chosen: the browser's language, else the site's.
AUTOMATIC = ""


class LanguageForm(FlaskForm):
    # Each language is named in itself, so that anyone can find theirs on any page.
    language = SelectField(
        _l("Language of the pages"),
        choices=[SelectChoice(AUTOMATIC, _l("Automatic: the browser's language, else the site's"))]
        + [SelectChoice(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
    )


class WardForm(FlaskForm):
    """Put a user on a ward, or take them off one: the ward and a reason (kept in the trail)."""

    ward = SelectField(_l("Ward"), coerce=int, validate_choice=False)
    reason = StringField(
        _l("Reason"),
        validators=[DataRequired(message=_l("A reason is required.")), Length(max=500)],
    )
