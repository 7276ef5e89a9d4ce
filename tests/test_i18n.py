"""English and Chinese: the catalogs are complete, every page speaks Chinese, and the
language is the user's choice, else the browser's, else the site's, else English."""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import url_for
from sqlmodel import select

from qms.accounts import service
from qms.accounts.models import Site, User
from qms.core.i18n import LANGUAGES, N_, _, _l, format_datetime, ngettext
from qms.core.trail import AuditTrailEntry
from qms.demo import DEMO_USERS, load_demo
from qms.paths import TRANSLATIONS_DIR

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {
    "_": None,
    "_l": None,
    "ngettext": (1, 2),
    "N_": None,
    "gettext": None,
    "lazy_gettext": None,
}


def _catalog(language: str):
    with open(TRANSLATIONS_DIR / language / "LC_MESSAGES" / "messages.po", "rb") as handle:
        return read_po(handle, locale=language)


def _extracted() -> dict[str, list[str]]:
    """Every msgid in qms/ and templates/, with where it is, as `make i18n` finds them."""
    with open(ROOT / "babel.cfg") as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        found.setdefault(msgid, []).append(f"{filename}:{lineno}")
    return found


# --- the catalogs ------------------------------------------------------------------


def test_extraction_finds_the_messages_of_code_and_templates():
    found = _extracted()
    where = {place.split(":")[0] for places in found.values() for place in places}
    assert "templates/base.html" in where and "qms/web/errors.py" in where
    assert "Sign in" in found and "Quality officer" in found


def test_every_message_has_a_chinese_translation():
    catalog = _catalog("zh_CN")
    problems = []
    for msgid, places in sorted(_extracted().items()):
        entry = catalog.get(msgid)
        if entry is None:
            problems.append(f"{places[0]}: {msgid!r} is not in the zh_CN catalog (run make i18n)")
        elif entry.fuzzy:
            problems.append(f"{places[0]}: {msgid!r} is fuzzy in the zh_CN catalog")
        elif not (all(entry.string) if isinstance(entry.string, tuple) else entry.string):
            problems.append(f"{places[0]}: {msgid!r} has no Chinese translation")
    assert not problems, "\n".join(problems)


PLACEHOLDER = re.compile(r"%\((\w+)\)[sdr]")


def test_translations_keep_their_placeholders():
    catalog = _catalog("zh_CN")
    problems = [f"{m.id!r}: {', '.join(map(str, errs))}" for m, errs in catalog.check()]
    for message in catalog:
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = {name for msgid in ids for name in PLACEHOLDER.findall(msgid)}
        for string in strings:
            if string and set(PLACEHOLDER.findall(string)) != wanted:
                problems.append(f"{ids[0]!r}: the translation must use {sorted(wanted)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("language", LANGUAGES)
def test_compiled_catalogs_match_their_po_files(language):
    # The .mo files are committed (a fresh clone and the wheel need no build step):
    # this fails when a .po was changed without `make i18n`.
    with open(TRANSLATIONS_DIR / language / "LC_MESSAGES" / "messages.mo", "rb") as handle:
        compiled = read_mo(handle)
    wanted = dict(_as_compiled(m) for m in _catalog(language) if m.id and m.string and not m.fuzzy)
    shipped = dict(_as_compiled(m) for m in compiled if m.id)
    assert shipped == wanted, "run `make i18n`: the .mo is older than its .po"


def _as_compiled(message) -> tuple:
    """(msgid, msgstr) as a .mo holds them: a plural entry's forms as a tuple, and a form
    left empty in the .po compiled as its msgid (singular or plural), as pybabel does."""
    if not isinstance(message.id, list | tuple):
        return message.id, message.string
    forms = tuple(s or message.id[min(i, 1)] for i, s in enumerate(message.string))
    return tuple(message.id), forms


def test_outside_a_request_messages_are_english():
    assert _("Sign in") == "Sign in"
    assert _("User %(username)s created.", username="li.na") == "User li.na created."
    assert str(_l("Quality officer")) == "Quality officer"
    assert ngettext("%(num)d unit", "%(num)d units", 2) == "2 units"
    assert N_("Units") == "Units"
    moment = datetime(2026, 10, 2, 1, 30, tzinfo=UTC)
    assert format_datetime(moment) == "Oct 2, 2026, 1:30\u202fAM +00:00"
    assert format_datetime(moment, zone="Asia/Shanghai", seconds=True).endswith(
        "9:30:00\u202fAM +08:00"
    )


def test_in_a_chinese_request_messages_times_and_labels_are_chinese(app):
    from qms.accounts.roles import Role

    with app.test_request_context("/", headers={"Accept-Language": "zh-CN"}):
        assert _("Sign in") == "登录"
        assert Role.QUALITY_OFFICER.label == "质量负责人"
        moment = datetime(2026, 10, 2, 1, 30, tzinfo=UTC)
        # No site is chosen before sign-in: the installation's zone (QMS_TIMEZONE).
        assert format_datetime(moment) == "2026年10月2日 09:30 +08:00"


# --- every page in Chinese ---------------------------------------------------------

# Endpoints the walk leaves out, each with the reason.
NOT_WALKED = {
    "static": "stylesheets, not a page",
    "web.health": "JSON for load balancers, not a page",
}
# Query strings the routes do not give, walked too: the units list filtered down to
# nothing, and past its last page (its pager and the message that says so).
QUERIES = {
    "records.units": ("?status=cancelled&product=kymriah&ward=HEM", "?page=2"),
}
# A value for each URL parameter of the app's routes.
DEMO_UNITS = ("K-2026-001", "Y-2026-002")
# The demo's first deviation (its typed infusion rate opens one), numbered in its year.
DEMO_DEVIATION = f"DEV-SH01-{datetime.now(ZoneInfo('Asia/Shanghai')).year}-0001"
ATTRIBUTES = ("title", "placeholder", "aria-label", "alt")
# Elements (by data-testid) whose words are not the interface's (see _VisibleText).
DATA_ELEMENTS = ("value",)


class _VisibleText(HTMLParser):
    """The text a reader sees: text nodes and the attributes a screen shows or reads out.

    The values a record holds (a field's id and what was entered, e.g. `filter`
    `none`, `equipment` `LN2-01`): they are data, shown as recorded.
    """

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self._skip: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self._skip or tag in ("script", "style") or attrs.get("data-testid") in DATA_ELEMENTS:
            self._skip.append(tag)
            return
        self.parts.extend(attrs[a] for a in ATTRIBUTES if attrs.get(a))

    def handle_endtag(self, tag):
        if self._skip and self._skip[-1] == tag:
            self._skip.pop()

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _VisibleText()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


@functools.cache
def _english_patterns() -> tuple[tuple[str, re.Pattern], ...]:
    """Each English msgid (its words between placeholders) as a pattern to look for (compiled
    once: there are more than `re`'s cache holds, and every page of every role asks)."""
    patterns = []
    for message in _catalog("zh_CN"):
        if not message.id:
            continue
        msgid = message.id[0] if isinstance(message.id, tuple) else message.id
        for fragment in re.split(r"%\(\w+\)[sdr]", msgid):
            fragment = fragment.strip(" .,:;()")
            if len(fragment) > 3 and re.search(r"[A-Za-z]", fragment):
                pattern = re.compile(
                    r"(?<![A-Za-z0-9_])" + re.escape(fragment) + r"(?![A-Za-z0-9_])"
                )
                patterns.append((fragment, pattern))
    return tuple(patterns)


def english_left(html: str, data: tuple[str, ...] = ()) -> list[str]:
    """The English msgids left in the page, once the `data` shown in it is taken out."""
    text = visible_text(html)
    for value in sorted(data, key=len, reverse=True):
        text = text.replace(value, " ")
    # A plain substring test first (fast, in C): the word-bounded pattern only where it can match.
    return sorted(
        {
            fragment
            for fragment, pattern in _english_patterns()
            if fragment in text and pattern.search(text)
        }
    )


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _recorded_prose(session) -> tuple[str, ...]:
    """What people wrote (reasons; the names of sites and wards) and the engine stored
    (finding messages) in the records.

    These are data, shown as they were recorded, not words of the interface.
    """
    from qms.accounts.models import Ward
    from qms.records.models import StepRecord, UnitStatus

    prose = set(session.exec(select(Site.name))) | set(session.exec(select(Ward.name)))
    for model in (StepRecord, UnitStatus):
        for reason, findings in session.exec(select(model.reason, model.findings)):
            prose.update([reason] if reason else [])
            prose.update(s for s in _strings(json.loads(findings)) if " " in s)
    return tuple(prose)


def test_the_check_finds_english():
    assert english_left("<p>Sign in</p>") == ["Sign in"]
    assert english_left('<input placeholder="Reason to unlock">') == ["Reason", "Reason to unlock"]
    assert english_left("<p>产品单元 K-1 · Unit K-2</p>") == ["Unit"]
    assert english_left("<p>登录 · storage_in · Li Na</p>") == []


def _demo_in_chinese(session):
    load_demo(session=session)
    people = {u.username: u for u in session.exec(select(User))}
    for username, *_rest in DEMO_USERS:
        service.set_language(session=session, user=people[username], language="zh_CN")
    session.commit()
    return people


def _sign_in(client, csrf_from, username: str, password: str) -> None:
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )
    assert response.status_code == 302, f"{username} could not sign in"


def _urls(app, people) -> list[tuple[str, str]]:
    values = {
        "unit_id": DEMO_UNITS,
        "user_id": (people["li.na"].id,),
        "action": ("unlock",),
        "change": ("grant",),  # a ward put on a user (POST only)
        # The quality pages (their objects exist in the demo or answer 404, in Chinese too).
        "run_id": ("AUD-SH01-2026-0001",),
        "deviation_id": (DEMO_DEVIATION,),
        "capa_id": ("CAPA-SH01-2026-0001",),
        "index": (0,),
        "number": ("1",),
        "sha256": ("0" * 64,),
        "version_id": ("X-0/v1",),  # no report in the demonstration data: its 404 page
        "delivery_id": ("DLV-0",),  # nor any delivery: its 404 page
        "step": ("infusion_start",),
        "record_id": ("K-2026-001#1",),
        "equipment_id": ("LN2-01",),
    }
    urls = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if rule.endpoint in NOT_WALKED:
                continue
            unknown = set(rule.arguments) - set(values)
            assert not unknown, f"{rule}: give the walk a value for {', '.join(sorted(unknown))}"
            combos = [{}]
            for argument in sorted(rule.arguments):
                combos = [dict(c, **{argument: v}) for c in combos for v in values[argument]]
            urls += [(rule.endpoint, url_for(rule.endpoint, **combo)) for combo in combos]
            urls += [
                (rule.endpoint, url_for(rule.endpoint) + query)
                for query in QUERIES.get(rule.endpoint, ())
            ]
    return urls


@pytest.mark.parametrize("username", [u for u, *_ in DEMO_USERS if u != "wang.wei"])
def test_every_page_is_in_chinese_for_each_role(app, session, csrf_from, username):
    people = _demo_in_chinese(session)
    recorded = _recorded_prose(session)
    client = app.test_client()
    _sign_in(client, csrf_from, username, dict((u, p) for u, _n, _r, p in DEMO_USERS)[username])
    problems = []
    # GET on every route: pages, 403 pages for what the role may not see, 405 pages for
    # the routes that only take a form; then a page that does not exist.
    for endpoint, url in [*_urls(app, people), ("404", "/no/such/page")]:
        response = client.get(url, follow_redirects=True)
        if not response.content_type.startswith("text/html"):
            continue
        html = response.get_data(as_text=True)
        assert '<html lang="zh-CN">' in html, f"{url}: not marked as Chinese"
        left = english_left(html, recorded)
        if left:
            problems.append(f"{url} ({endpoint}, {response.status_code}): {left}")
    assert not problems, "\n".join(problems)


def test_sign_in_and_error_pages_are_in_chinese_before_sign_in(app, session, csrf_from):
    load_demo(session=session)
    session.commit()
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN,zh;q=0.9,en;q=0.5"
    pages = {
        "login": client.get("/login"),
        "wrong password": client.post(
            "/login",
            data={
                "username": "li.na",
                "password": "not-her-password",
                "csrf_token": csrf_from(client.get("/login").get_data(as_text=True)),
            },
        ),
        "missing form token": client.post("/login", data={"username": "li.na"}),
        "redirect to sign in": client.get("/admin/users", follow_redirects=True),
    }
    for name, response in pages.items():
        html = response.get_data(as_text=True)
        assert english_left(html) == [], f"{name}: {english_left(html)}"
    assert "还可尝试 4 次" in pages["wrong password"].get_data(as_text=True)
    assert "请登录后继续。" in pages["redirect to sign in"].get_data(as_text=True)


def test_a_wrong_form_is_explained_in_chinese(app, session, csrf_from):
    _demo_in_chinese(session)
    client = app.test_client()
    _sign_in(client, csrf_from, "sun.hao", "demo-admin-2026")
    token = csrf_from(client.get("/admin/users/new").get_data(as_text=True))
    response = client.post(
        "/admin/users/new",
        data={"username": "x", "full_name": "", "role": "nurse", "csrf_token": token},
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "该字段是必填字段。" in html and "请至少选择一个院区。" in html
    assert english_left(html) == []


def _flashed(html: str) -> list[str]:
    return [visible_text(m) for m in re.findall(r'<div class="flash[^>]*>(.*?)</div>', html)]


def test_a_refused_status_change_on_the_unit_page_is_explained_in_chinese(app, session, csrf_from):
    people = _demo_in_chinese(session)
    recorded = _recorded_prose(session)
    client = app.test_client()
    _sign_in(client, csrf_from, "li.na", "demo-nurse-2026")

    def change(unit_id: str, **form) -> tuple[int, str]:
        token = csrf_from(client.get(f"/units/{unit_id}").get_data(as_text=True))
        response = client.post(
            f"/units/{unit_id}/status", data={**form, "csrf_token": token}, follow_redirects=True
        )
        return response.status_code, response.get_data(as_text=True)

    # Cancelling without a reason, signing with a wrong password: the service's messages,
    # flashed above the unit page, in the reader's language.
    status, html = change("Y-2026-002", status="cancelled", reason="", password="")
    assert status == 200
    assert _flashed(html) == ["取消单元必须填写原因（例如患者的输注已停止）"]
    assert english_left(html, recorded) == []
    status, html = change("Y-2026-002", status="complete", reason="", password="not-my-password")
    assert _flashed(html) == ["密码错误：签名未被接受，未记录任何内容"]
    assert english_left(html, recorded) == []
    # Closing an unfinished unit without a reason: the rules it breaks are listed (the
    # engine's own words for each come from qms/checklists) and a reason is asked for.
    status, html = change("Y-2026-002", status="complete", reason="", password="demo-nurse-2026")
    (refusal,) = _flashed(html)
    assert re.match(r"此记录违反了 \d+ 条规则：\[(关键|主要|次要)\] ", refusal), refusal
    assert refusal.endswith("请填写原因，记录将连同原因一并保存，并作为发现项报告。")
    # A unit already complete: the 409 page says so.
    status, html = change("K-2026-001", status="complete", reason="", password="demo-nurse-2026")
    assert status == 409 and "单元 K-2026-001 已是“已完成”状态" in visible_text(html)
    assert english_left(html, recorded) == []
    # Nothing was stored; the wrong password counts towards the lockout, as at sign-in.
    from qms.records.models import UnitStatus

    statuses = session.exec(select(UnitStatus.unit_id)).all()
    assert statuses == ["K-2026-001"]
    lock = service.lock_state(
        session=session, username="li.na", threshold=5, minutes=15, now=datetime.now(UTC)
    )
    assert lock.failures == 1 and people["li.na"].language == "zh_CN"


def test_the_units_list_in_chinese_with_its_rows_filters_and_pages(app, session, csrf_from):
    from qms.records.service import register_unit
    from qms.records.signatures import PasswordEntry
    from qms.records.status import set_unit_status
    from qms.web.app import runtime_of

    people = _demo_in_chinese(session)
    registry = runtime_of(app).registry
    for n in range(55):  # 57 units: two pages of 50
        register_unit(
            session=session,
            registry=registry,
            by=people["li.na"],
            unit_id=f"Z-{n:03d}",
            checklist_id="kymriah",
            site_id="SH-01",
            patient_ref=f"P-{1000 + n}",
            attributes={"ward": "CTU"} if n % 2 else None,  # li.na's ward
        )
    # Closed before any step was recorded: every required step is a finding.
    set_unit_status(
        session=session,
        registry=registry,
        unit_id="Z-000",
        status="complete",
        by=people["liu.yang"],
        credential=PasswordEntry("demo-quality-2026"),
        freshness_minutes=5,
        reason="infusion given at another hospital",
    )
    session.commit()
    recorded = _recorded_prose(session)
    client = app.test_client()
    _sign_in(client, csrf_from, "li.na", "demo-nurse-2026")
    pages = {
        query: client.get(f"/units{query}").get_data(as_text=True)
        for query in ("", "?page=2", "?page=3", "?status=complete", "?ward=CTU&product=kymriah")
    }
    for query, html in pages.items():
        assert english_left(html, recorded) == [], f"/units{query}: {english_left(html, recorded)}"
    first, second, past = (visible_text(pages[q]) for q in ("", "?page=2", "?page=3"))
    assert "共 57 个产品单元 · 第 1 页，共 2 页" in first and "下一页 →" in first
    assert "← 上一页" in second and "第 2 页，共 2 页" in second
    assert "第 3 页超出范围： 共 2 页。" in past
    assert len(re.findall(r"<tr data-unit=", pages[""])) == 50
    complete = visible_text(pages["?status=complete"])
    assert "共 2 个产品单元" in complete  # Z-000 and the demonstration's K-2026-001
    assert re.search(r"(关键|主要|次要) \d+ 项", complete), complete
    in_ward = visible_text(pages["?ward=CTU&product=kymriah"])
    # 27 of these and the demonstration's Kymriah unit, all on CTU
    assert "共 28 个产品单元" in in_ward and "病区 CTU" in in_ward
    # The last step of the demonstration's units (page 2): named by its Chinese title, never its
    # id, at a time in the site's zone and the Chinese format.
    assert re.search(r"入库存放 \d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d \+08:00", second)
    assert "storage_in" not in second


# --- which language ----------------------------------------------------------------


def _home(client) -> tuple[str, str]:
    html = client.get("/").get_data(as_text=True)
    lang = re.search(r'<html lang="([^"]+)">', html).group(1)
    words = "zh" if "首页" in html else "en" if ">Home<" in html else "?"
    return lang, words


@pytest.mark.parametrize(
    ("choice", "browser", "site", "shown"),
    [
        # The user's own choice wins over the browser and the site.
        ("zh_CN", "en-US,en;q=0.9", "en", "zh-CN"),
        ("en", "zh-CN,zh;q=0.9", "zh_CN", "en"),
        # No choice: the browser's best match of English and Chinese.
        (None, "zh-CN,zh;q=0.9,en;q=0.8", "en", "zh-CN"),
        (None, "zh", "en", "zh-CN"),
        (None, "zh-Hans", "en", "zh-CN"),
        (None, "zh_CN", "en", "zh-CN"),
        (None, "fr, en;q=0.5, zh;q=0.4", "zh_CN", "en"),
        # Neither: the site's default, then English.
        (None, None, "zh_CN", "zh-CN"),
        (None, "fr, de", "zh_CN", "zh-CN"),
        (None, None, "en", "en"),
    ],
)
def test_language_precedence(client, session, make_user, login, choice, browser, site, shown):
    user = make_user("nurse", full_name="测试 护士")
    session.get(Site, "SH-01").language = site
    if choice:
        service.set_language(session=session, user=user, language=choice)
    session.commit()
    if browser:
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = browser
    login(user)
    assert _home(client) == (shown, "zh" if shown == "zh-CN" else "en")


def test_before_sign_in_without_a_browser_language_pages_are_english(client, make_site, session):
    make_site().language = "zh_CN"
    session.commit()
    html = client.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in html and "Sign in" in html


# --- switching on the account page -------------------------------------------------


def test_switching_language_on_the_account_page(client, session, make_user, login, csrf_from):
    user = make_user("pharmacist", full_name="Chen Jie")
    login(user)
    page = client.get("/account").get_data(as_text=True)
    assert '<html lang="en">' in page and "Language of the pages" in page

    def choose(language: str):
        token = csrf_from(client.get("/account").get_data(as_text=True))
        return client.post(
            "/account", data={"language": language, "csrf_token": token}, follow_redirects=True
        ).get_data(as_text=True)

    chinese = choose("zh_CN")
    assert '<html lang="zh-CN">' in chinese and "您的语言设置已保存。" in chinese
    assert english_left(chinese) == []
    assert _home(client) == ("zh-CN", "zh")
    session.expire_all()
    assert session.get(User, user.id).language == "zh_CN"
    assert '<option selected value="zh_CN">' in client.get("/account").get_data(as_text=True)

    english = choose("en")
    assert '<html lang="en">' in english and "Your language setting was saved." in english
    assert _home(client) == ("en", "en")
    # Automatic again: the browser decides.
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    choose("")
    assert _home(client) == ("zh-CN", "zh")
    session.expire_all()
    assert session.get(User, user.id).language is None

    trail = session.exec(
        select(AuditTrailEntry)
        .where(AuditTrailEntry.entity_id == user.username, AuditTrailEntry.field_name == "language")
        .order_by(AuditTrailEntry.id)
    ).all()
    assert [(e.old_value, e.new_value) for e in trail] == [
        (None, "zh_CN"),
        ("zh_CN", "en"),
        ("en", None),
    ]
    assert {e.actor_id for e in trail} == {user.id} and {e.action for e in trail} == {"change"}


def test_signing_out_is_said_in_the_language_the_user_chose(client, session, make_user, login):
    user = make_user("nurse", full_name="测试 护士")
    service.set_language(session=session, user=user, language="zh_CN")
    login(user)
    with client.session_transaction() as browser_session:
        browser_session["last_seen"] -= 16 * 60
    timed_out = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert "您已 15 分钟无操作，系统已自动退出登录。" in timed_out
    login(user)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").get_data(as_text=True))
    signed_out = client.post("/logout", data={"csrf_token": token.group(1)}, follow_redirects=True)
    # The sign-in page after it follows the browser again (none here: English).
    assert "您已退出登录。" in signed_out.get_data(as_text=True)


def test_an_unknown_language_is_refused_with_a_message(
    client, session, make_user, login, csrf_from
):
    user = make_user("nurse")
    login(user)
    token = csrf_from(client.get("/account").get_data(as_text=True))
    response = client.post("/account", data={"language": "fr", "csrf_token": token})
    assert response.status_code == 422 and "Not a valid choice" in response.get_data(as_text=True)
    with pytest.raises(service.AccountError, match="unknown language 'fr'"):
        service.set_language(session=session, user=user, language="fr")


# --- times -------------------------------------------------------------------------


def test_the_lockout_message_gives_the_time_in_the_site_zone_and_the_locale(
    client, session, make_user, csrf_from, app
):
    user = make_user("nurse")
    session.commit()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    threshold = app.extensions["qms_settings"].lockout_threshold
    for _attempt in range(threshold + 1):
        token = csrf_from(client.get("/login").get_data(as_text=True))
        response = client.post(
            "/login", data={"username": user.username, "password": "wrong!", "csrf_token": token}
        )
    text = visible_text(response.get_data(as_text=True))
    assert f"该账户因连续 {threshold} 次登录失败已被锁定" in text
    assert re.search(r"请在 \d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d \+08:00 之后重试", text), text
    assert "UTC" not in text
