"""A refused label is explained in the reader's language: each problem and note is a code and
parameters (`qms.identifiers.messages.Said`), worded through Flask-Babel when shown."""

from __future__ import annotations

import re

import flask_babel
import pytest

from qms.identifiers import expect, identify
from qms.identifiers.messages import TEXTS, Said, worded

CJK = re.compile(r"[\u4e00-\u9fff]")
# Codes whose words are only what a library said (biip's English, shown as it is).
AS_SAID = {"gs1.key_error"}

BAD_LABELS = [
    "",  # nothing scanned
    "=A99991712345",  # a DIN without its flag
    "=A9999171234567X",  # a wrong flag
    "=O999917123456 00",  # the letter O
    "&/CH123426ABC12",  # a COI too short
    "(01)12345678901231(17)(10)ABC",  # an empty expiry in printed text
    "(21)SERIAL123",  # a serial with no GTIN
    "]d20112345678901234",  # a GTIN with a wrong check digit
    "=%5100",  # an ISBT 128 blood group barcode, not a DIN
]


@pytest.fixture
def chinese(app):
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        flask_babel.refresh()
        yield flask_babel.gettext


@pytest.mark.parametrize("code", sorted(set(TEXTS) - AS_SAID))
def test_every_problem_has_chinese_words_with_its_values(chinese, code):
    names = re.findall(r"%\((\w+)\)s", TEXTS[code])
    params = {name: f"V{i}" for i, name in enumerate(names)}
    english = Said(code, **params)
    words = worded(english, chinese)
    assert CJK.search(words), (code, words)
    assert all(value in words for value in params.values()), words
    assert str(english) == TEXTS[code] % params  # the English is the record as it was


@pytest.mark.parametrize("label", BAD_LABELS)
def test_a_refused_label_is_explained_in_chinese(chinese, label):
    result = identify(label)
    assert not result.valid and result.problems
    for problem in result.problems:
        assert isinstance(problem, Said), problem
        if problem.code not in AS_SAID:
            assert CJK.search(worded(problem, chinese)), worded(problem, chinese)


def test_a_label_of_the_wrong_kind_names_both_kinds_in_chinese(chinese):
    with pytest.raises(ValueError) as refused:
        expect("(01)12345678901231(17)(10)ABC", "isbt128_din")
    words = worded(refused.value.said, chinese)
    assert "ISBT 128 献血（捐献）识别号（DIN）" in words and "GS1 药品包装条码" in words
    assert "(17) 没有值" in words
    assert str(refused.value).startswith("expected an ISBT 128 donation identification number")


def test_the_registration_page_refuses_a_bad_chain_of_identity_id_in_chinese(
    client, login, make_user, csrf_from
):
    login(make_user("pharmacist"))
    chinese = {"Accept-Language": "zh-CN"}
    page = client.get("/units/new", headers=chinese).get_data(as_text=True)
    response = client.post(
        "/units/new",
        headers=chinese,
        data={
            "csrf_token": csrf_from(page),
            "checklist": "kymriah",
            "unit_id": "K-1",
            "patient_ref": "P-1",
            "coi_id": "&/CH123426ABC12",
        },  # fmt: skip
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    shown = re.search(r"form-error\">(.*?)</div>", text, re.S)[1]
    assert "身份链标识有 15 个字符，此标识有 13 个" in shown, shown
    assert "this one has" not in text
