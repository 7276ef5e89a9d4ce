"""A refused step names the checklist's titles and labels, never a step or field id: every
step form of every shipped checklist, sent empty and sent with a wrong value in every field."""

from __future__ import annotations

import html as markup
import re
from datetime import UTC, datetime, timedelta

import pytest

from qms.checklists.language import Registry
from qms.records.fields import SCHEME_KINDS, field_label
from tests.records.conftest import DEFAULT_PASSWORD

SHIPPED = Registry.from_directory()
WRONG = {
    "number": "abc",
    "temperature": "warm",
    "yes_no": "maybe",
    "choice": "none-of-these",
    "identifier": "=!NOT-A-LABEL",
    "equipment": "NO-SUCH-FREEZER",
    "datetime": "yesterday",
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return SHIPPED


# Ids that are also words of the refusals' own sentences ("not storage equipment in use").
PROSE = {"equipment"}


def _refused(fdef) -> bool:
    """Whether the wrong value sent for this field is refused (an identifier of no scheme
    is any text)."""
    return fdef.type in WRONG and (fdef.type != "identifier" or fdef.scheme in SCHEME_KINDS)


def _raw_ids(text: str, step_def) -> list[str]:
    """The ids of the step and its fields that the text shows as ids: an id with "_", or
    one that is left once the step's own words (title, labels, units) are taken out."""
    words = text.lower()
    for fdef in step_def.fields.values():
        for said in (fdef.label, fdef.unit):
            if said:
                words = words.replace(str(said).lower(), "")
    words = words.replace(str(step_def.title).lower(), "")
    return [
        name
        for name in [step_def.id, *step_def.fields]
        if re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", text)
        and ("_" in name or (name in words and name not in PROSE))
    ]


def _refusal(response) -> str:
    found = re.findall(r'role="alert"[^>]*>(.*?)</div>', response.get_data(as_text=True), re.S)
    assert found, response.status_code
    return markup.unescape(found[-1])


def _site_now() -> str:
    from zoneinfo import ZoneInfo

    moment = datetime.now(UTC) - timedelta(minutes=5)
    return moment.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%dT%H:%M")


@pytest.mark.parametrize("checklist_id", sorted({c.id for c in SHIPPED}))
def test_every_refused_step_form_names_labels_not_ids(
    client, login, make_user, make_unit, session, checklist_id
):
    checklist = SHIPPED.get(checklist_id)
    pharmacist = make_user("pharmacist")
    unit = make_unit(by=pharmacist, checklist_id=checklist_id, profile="us",
                     at=datetime.now(UTC) - timedelta(hours=6))  # fmt: skip
    people = {role: make_user(role) for role in ("nurse", "physician", "pharmacist")}
    session.commit()
    signed_in = None
    shown: list[str] = []
    for step, step_def in checklist.steps.items():
        role = next((r for r in step_def.roles if r in people), "nurse")
        if role != signed_in:
            client._cookies.clear()
            login(people[role])
            signed_in = role
        page = client.get(f"/units/{unit.id}").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
        base = {"csrf_token": token, "password": DEFAULT_PASSWORD, "performed_at": _site_now()}
        wrong = {f"f-{n}": WRONG.get(f.type, "some text") for n, f in step_def.fields.items()}
        for data in (
            ({}, wrong) if set(WRONG) & {f.type for f in step_def.fields.values()} else ({},)
        ):
            required = [n for n, f in step_def.fields.items() if f.required]
            if not data and not required:
                continue
            response = client.post(f"/units/{unit.id}/steps/{step}", data={**base, **data})
            # 422: every value parses (identifiers of no scheme) and the engine's findings
            # ask for a reason; their words must name no id either.
            assert response.status_code in (400, 422), (step, data, response.status_code)
            text = _refusal(response)
            if response.status_code == 400:
                assert "Nothing was recorded" in text, text
            if data and response.status_code == 400:  # every wrong field is named by its label
                for name in step_def.fields:
                    if _refused(step_def.fields[name]):
                        assert field_label(step_def, name) in text, (name, text)
            if raw := _raw_ids(text, step_def):
                shown.append(f"{checklist_id} {step}: {raw} in {text!r}")
    assert not shown, "\n".join(shown)
