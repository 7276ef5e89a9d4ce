"""Electronic signatures (21 CFR Part 11 §11.50, §11.200 in spirit): who, when, meaning.

Each signature stores the printed name (the signer's full name when signing), the
date-time and the meaning, and is chained in the ledger. A signer proves who they are
with either a fresh session (they entered their password within
``Settings.signature_freshness_minutes``) or their password again; a witness at the
same bedside signs in the same submission with their own username and password.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from qms.accounts.access import require
from qms.accounts.models import User
from qms.accounts.passwords import verify_password
from qms.accounts.roles import Permission
from qms.accounts.service import Lockout, lock_state
from qms.core.clock import CLOCK_SKEW
from qms.core.errors import Denied, NotFound, SignatureError
from qms.core.i18n import _, _l
from qms.db import utcnow
from qms.records.models import Signature, StepRecord, Unit
from qms.records.writers import write_signature

# What a later signature (sign_record) means, and the permission it needs.
LATER_MEANINGS = {
    "verified": Permission.LOG_STEPS,
    "reviewed": Permission.AUDIT,
    "approved": Permission.AUDIT,
}
# The meanings of signatures as a message names them, in the reader's language.
MEANING_LABELS = {
    "performed": _l("performed"),
    "witnessed": _l("witnessed"),
    "verified": _l("verified"),
    "reviewed": _l("reviewed"),
    "approved": _l("approved"),
}


@dataclass(frozen=True)
class FreshSession:
    """Proof from the signer's own signed-in session: when they last gave their password."""

    user_id: int
    password_at: datetime


@dataclass(frozen=True)
class PasswordEntry:
    """The signer typed their password again for this signature."""

    password: str


Credential = FreshSession | PasswordEntry


@dataclass(frozen=True)
class WitnessCredential:
    """A witness co-signing in the same submission: their own username and password."""

    username: str
    password: str


def _refuse_if_locked(session: Session, username: str, lockout: Lockout, now: datetime) -> None:
    state = lock_state(
        session=session,
        username=username,
        threshold=lockout.threshold,
        minutes=lockout.minutes,
        now=now,
    )
    if state.locked:
        raise SignatureError(
            _(
                "the account %(username)s is locked after %(failures)s wrong passwords and "
                "cannot sign until it is unlocked: nothing was recorded",
                username=username,
                failures=state.failures,
            )
        )


def authenticate_signer(
    *,
    session: Session,
    user: User,
    credential: Credential,
    freshness_minutes: int,
    now: datetime,
    lockout: Lockout | None = None,
) -> str:
    """Check the signer's proof; return the method recorded with the signature.

    A locked account cannot sign; a wrong password raises with `failed_username` so that
    the caller can count it towards the lockout.
    """
    if not user.active:
        raise SignatureError(
            _("%(username)s is deactivated and cannot sign", username=user.username)
        )
    _refuse_if_locked(session, user.username, lockout or Lockout(), now)
    if isinstance(credential, PasswordEntry):
        if not credential.password or not verify_password(user.password_hash, credential.password):
            raise SignatureError(
                _("wrong password: the signature was not accepted and nothing was recorded"),
                failed_username=user.username,
            )
        return "password"
    if isinstance(credential, FreshSession):
        if credential.user_id != user.id:
            raise SignatureError(_("a session can only sign for the person signed in"))
        age = now - credential.password_at
        if age > timedelta(minutes=freshness_minutes) or age < -CLOCK_SKEW:
            raise SignatureError(
                _(
                    "your password was last entered more than %(minutes)s minutes ago: "
                    "enter it again to sign",
                    minutes=freshness_minutes,
                )
            )
        return "session"
    raise SignatureError(_("a signature needs your password or a fresh session"))


def authenticate_witness(
    *,
    session: Session,
    credential: WitnessCredential,
    now: datetime | None = None,
    lockout: Lockout | None = None,
) -> User:
    """The witness's own username and password; one message whatever was wrong."""
    username = (credential.username or "").strip().lower()
    if username:
        _refuse_if_locked(session, username, lockout or Lockout(), now or utcnow())
    user = session.exec(select(User).where(User.username == username)).first() if username else None
    if (
        user is None
        or not user.active
        or not verify_password(user.password_hash, credential.password or "")
    ):
        raise SignatureError(
            _(
                "the witness's username or password is wrong (or the account is inactive): "
                "nothing was recorded; the witness signs again with their own credentials"
            ),
            failed_username=username or None,
        )
    return user


def sign_record(
    *,
    session: Session,
    record_id: str,
    signer: User,
    meaning: str,
    credential: Credential,
    freshness_minutes: int,
    now: datetime | None = None,
    lockout: Lockout | None = None,
) -> Signature:
    """A later signature on a record: verified (a second clinician), reviewed or approved."""
    now = now or utcnow()
    if meaning not in LATER_MEANINGS:
        raise SignatureError(
            _(
                "a record is signed later only as %(meanings)s; performed and witnessed are "
                "signed when the step is recorded",
                meanings=_(", ").join(LATER_MEANINGS),
            )
        )
    record = session.get(StepRecord, record_id)
    if record is None:
        raise NotFound(_("there is no record %(record)s", record=record_id))
    unit = session.get(Unit, record.unit_id)
    label = MEANING_LABELS[meaning]
    require(
        session,
        signer,
        LATER_MEANINGS[meaning],
        unit.site_id,
        action=_l("sign a record as %(meaning)s", meaning=label),
    )
    if signer.id in (record.performed_by_id, record.recorded_by_id, record.witness_id):
        raise Denied(
            _(
                "%(meaning)s needs someone other than the people who performed, witnessed "
                "or entered the record",
                meaning=label,
            )
        )
    already = session.exec(
        select(Signature).where(
            Signature.record_id == record.id,
            Signature.signer_id == signer.id,
            Signature.meaning == meaning,
        )
    ).first()
    if already is not None:
        raise SignatureError(
            _("you already signed %(record)s as %(meaning)s", record=record.id, meaning=label)
        )
    method = authenticate_signer(
        session=session,
        user=signer,
        credential=credential,
        freshness_minutes=freshness_minutes,
        now=now,
        lockout=lockout,
    )
    return write_signature(
        session=session, record=record, signer=signer, meaning=meaning, method=method, signed_at=now
    )
