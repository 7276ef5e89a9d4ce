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

from sqlmodel import Session, col, func, select

from qms.accounts.models import User, UserSite
from qms.accounts.passwords import verify_password
from qms.accounts.roles import Permission, permissions_of
from qms.accounts.service import Lockout, lock_state
from qms.db import utcnow
from qms.records import ledger
from qms.records.clock import CLOCK_SKEW
from qms.records.errors import RecordNotFound, RecordPermissionError, SignatureError
from qms.records.models import Signature, StepRecord, Unit

MEANINGS = ("performed", "witnessed", "verified", "reviewed", "approved")
# What a later signature (sign_record) means, and the permission it needs.
LATER_MEANINGS = {
    "verified": Permission.LOG_STEPS,
    "reviewed": Permission.AUDIT,
    "approved": Permission.AUDIT,
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
            f"the account {username} is locked after {state.failures} wrong passwords and "
            "cannot sign until it is unlocked: nothing was recorded"
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
        raise SignatureError(f"{user.username} is deactivated and cannot sign")
    _refuse_if_locked(session, user.username, lockout or Lockout(), now)
    if isinstance(credential, PasswordEntry):
        if not credential.password or not verify_password(user.password_hash, credential.password):
            raise SignatureError(
                "wrong password: the signature was not accepted and nothing was recorded",
                failed_username=user.username,
            )
        return "password"
    if isinstance(credential, FreshSession):
        if credential.user_id != user.id:
            raise SignatureError("a session can only sign for the person signed in")
        age = now - credential.password_at
        if age > timedelta(minutes=freshness_minutes) or age < -CLOCK_SKEW:
            raise SignatureError(
                f"your password was last entered more than {freshness_minutes} minutes ago: "
                "enter it again to sign"
            )
        return "session"
    raise SignatureError("a signature needs your password or a fresh session")


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
            "the witness's username or password is wrong (or the account is inactive): "
            "nothing was recorded; the witness signs again with their own credentials",
            failed_username=username or None,
        )
    return user


def is_member(session: Session, user: User, site_id: str) -> bool:
    return (
        session.exec(
            select(UserSite).where(UserSite.user_id == user.id, UserSite.site_id == site_id)
        ).first()
        is not None
    )


def write_signature(
    *,
    session: Session,
    record: StepRecord,
    signer: User,
    meaning: str,
    method: str,
    signed_at: datetime,
    imported_at: datetime | None = None,
    imported_by: str | None = None,
) -> Signature:
    """Store one signature and chain it (internal: callers have checked who may sign)."""
    if meaning not in MEANINGS:
        raise SignatureError(
            f"unknown signature meaning {meaning!r}; one of: {', '.join(MEANINGS)}"
        )
    ledger.lock(session)
    count = session.exec(
        select(func.count()).select_from(Signature).where(Signature.record_id == record.id)
    ).one()
    signature_id = f"{record.id}/{count + 1}"
    content = ledger.signature_content(
        id=signature_id,
        record=record.id,
        signer=signer.username,
        printed_name=signer.full_name,
        meaning=meaning,
        signed_at=signed_at,
        method=method,
        imported_at=imported_at,
        imported_by=imported_by,
    )
    entry = ledger.append(session, "signature", signature_id, content)
    signature = Signature(
        id=signature_id,
        record_id=record.id,
        signer_id=signer.id,
        printed_name=signer.full_name,
        meaning=meaning,
        signed_at=signed_at,
        method=method,
        imported_at=imported_at,
        imported_by=imported_by,
        ledger_seq=entry.seq,
    )
    session.add(signature)
    session.flush()
    return signature


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
            f"a record is signed later only as {', '.join(LATER_MEANINGS)}; "
            "performed and witnessed are signed when the step is recorded"
        )
    record = session.get(StepRecord, record_id)
    if record is None:
        raise RecordNotFound(f"there is no record {record_id}")
    unit = session.get(Unit, record.unit_id)
    needed = LATER_MEANINGS[meaning]
    if needed not in permissions_of(signer.role):
        raise RecordPermissionError(f"a {signer.role} may not sign a record as {meaning}")
    if not is_member(session, signer, unit.site_id):
        raise RecordPermissionError(f"{signer.username} does not belong to site {unit.site_id}")
    if signer.id in (record.performed_by_id, record.recorded_by_id, record.witness_id):
        raise RecordPermissionError(
            f"{meaning} needs someone other than the people who performed, witnessed or entered the record"
        )
    already = session.exec(
        select(Signature).where(
            Signature.record_id == record.id,
            Signature.signer_id == signer.id,
            Signature.meaning == meaning,
        )
    ).first()
    if already is not None:
        raise SignatureError(f"you already signed {record.id} as {meaning}")
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


def signatures_of(session: Session, record_ids: list[str]) -> dict[str, list[Signature]]:
    out: dict[str, list[Signature]] = {rid: [] for rid in record_ids}
    if not record_ids:
        return out
    rows = session.exec(
        select(Signature)
        .where(col(Signature.record_id).in_(record_ids))
        .order_by(col(Signature.ledger_seq))
    )
    for signature in rows:
        out[signature.record_id].append(signature)
    return out
