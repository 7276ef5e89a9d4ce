"""Account forms (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length

from qms.accounts.roles import Role


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])


class UserCreateForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    full_name = StringField(
        "Full name (printed on signatures)", validators=[DataRequired(), Length(max=200)]
    )
    role = SelectField("Role", choices=[SelectChoice(r.value, r.label) for r in Role])
    sites = SelectMultipleField(
        "Sites", validators=[DataRequired(message="Choose at least one site.")]
    )
    password = PasswordField("Initial password", validators=[DataRequired(), Length(max=256)])
    reason = StringField(
        "Reason", default="new account", validators=[DataRequired(), Length(max=500)]
    )


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField(
        "Current password", validators=[DataRequired(), Length(max=256)]
    )
    new_password = PasswordField("New password", validators=[DataRequired(), Length(max=256)])
    repeat = PasswordField(
        "New password again",
        validators=[
            DataRequired(),
            EqualTo("new_password", message="The two new passwords differ."),
        ],
    )


class PasswordResetForm(FlaskForm):
    new_password = PasswordField("New password", validators=[DataRequired(), Length(max=256)])
    reason = StringField("Reason", validators=[DataRequired(), Length(max=500)])


class ReasonForm(FlaskForm):
    reason = TextAreaField(
        "Reason", validators=[DataRequired(message="A reason is required."), Length(max=500)]
    )
