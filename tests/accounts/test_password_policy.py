"""The password policy: at least 12 characters, not a common password, not the username."""

from __future__ import annotations

import pytest

from qms.accounts import service
from qms.accounts.passwords import COMMON_PASSWORDS_FILE, password_problem


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("aaaaaaaaaa", "at least 12 characters"),
        ("password12", "at least 12 characters"),
        ("aaaaaaaaaaaa", "most common"),
        ("Password1234", "most common"),
        ("qwerty123456", "most common"),
        ("1q2w3e4r5t6y", "most common"),
        ("iloveyou2026", "most common"),
        ("li.na-is-my-password", "must not contain the username"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(password, problem):
    assert problem in password_problem(password, username="li.na")


def test_a_long_uncommon_password_is_accepted():
    assert password_problem("thaw-bath-37-degrees", username="li.na") is None


def test_the_list_ships_in_the_package_and_holds_only_what_length_does_not_refuse():
    lines = [
        line for line in COMMON_PASSWORDS_FILE.read_text().splitlines() if not line.startswith("#")
    ]
    assert len(lines) > 1000 and all(len(line) >= 12 for line in lines)


def test_creating_a_user_with_a_common_password_is_refused(session, make_site):
    make_site("SH-01")
    with pytest.raises(service.AccountError, match="most common"):
        service.create_user(
            session=session,
            actor=service.Actor.system(),
            username="wang.wei",
            full_name="Wang Wei",
            role="nurse",
            password="qwertyuiop12",
            site_ids=["SH-01"],
        )
