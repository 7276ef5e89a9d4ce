"""When a delivery is tried again, and what state its attempts put it in (pure).

Shared by report deliveries (`qms.delivery.service`) and alert mails
(`qms.delivery.notices`): exponential backoff over 24 hours, a permanent refusal ends it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from qms.delivery.models import ACCEPTED, PERMANENT, Delivery, DeliveryAttempt

RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=4)
RETRY_WINDOW = timedelta(hours=24)

DELIVERED = "delivered"
FAILED = "failed"
WAITING = "waiting"


def retry_delay(attempts_made: int) -> timedelta:
    """How long after the n-th failed attempt the next one is made."""
    return min(RETRY_BASE * (2 ** max(attempts_made - 1, 0)), RETRY_CAP)


@dataclass(frozen=True)
class DeliveryState:
    delivery: Delivery
    attempts: tuple[DeliveryAttempt, ...]
    status: str  # delivered | failed | waiting
    next_at: datetime | None  # when the next attempt is due (waiting only)

    @property
    def last(self) -> DeliveryAttempt | None:
        return self.attempts[-1] if self.attempts else None


def state_of(delivery: Delivery, attempts: Iterable[DeliveryAttempt]) -> DeliveryState:
    """A delivery's state, from its attempts alone (pure)."""
    tried = tuple(sorted(attempts, key=lambda a: a.number))
    if any(a.outcome == ACCEPTED for a in tried):
        return DeliveryState(delivery, tried, DELIVERED, None)
    if any(a.outcome == PERMANENT for a in tried):
        return DeliveryState(delivery, tried, FAILED, None)
    if not tried:
        return DeliveryState(delivery, tried, WAITING, delivery.created_at)
    following = tried[-1].at + retry_delay(len(tried))
    if following > tried[0].at + RETRY_WINDOW:
        return DeliveryState(delivery, tried, FAILED, None)
    return DeliveryState(delivery, tried, WAITING, following)
