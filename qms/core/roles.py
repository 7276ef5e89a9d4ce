"""The names of the roles people hold: accounts grant them, checklists name who does a step."""

from __future__ import annotations

ROLE_NAMES = ("nurse", "physician", "pharmacist", "quality_officer", "regulator", "admin")
