"""Benchmark of a step recorded through the web form, against a bare Flask insert, same run.

    .venv/bin/python bench/web_step.py [--seconds 8] [--clients 1,10,50] [--backends sqlite,postgresql]

For each backend: a fresh migrated database with the demonstration data and one Kymriah
unit per client whose infusion has ended (loaded with `qms import`), served by `qms serve`
(waitress). Each client signs in as its own nurse with a unit of its own (a ward's nurses
each look after their own patient; a fresh session signs: no password per step) and, as
fast as it can, records the observation step. Two measures, each against the floor:

1. **the step** (what issue 9 names: the form's submission): the live check of the form
   as filled in (`POST .../steps/observation/check`, the JSON the page's script asks for)
   then the form's POST (`POST /units/<id>/steps/observation`: judged by the engine,
   appended to the ledger, answered by a redirect). The redirect is not followed: the
   client keeps the session cookie it had before the step, so the unread "recorded"
   message does not pile up in it.
2. **the round trip**: the same two requests and then the unit page the POST redirects
   to, as a browser does (the page shows the "recorded" message, which so leaves the
   session cookie: the largest cookie is printed).

The floor is a bare Flask app served by waitress with the same threads on the same
machine, whose one endpoint inserts one row into the same database. Printed: steps/s,
median and p99 of each, of the POST alone, the records the busiest unit reached, and the
floor's requests/s, median and p99.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.parse
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger import new_database  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHANGHAI = ZoneInfo("Asia/Shanghai")
THREADS = 16
UNIT = "K-BENCH-1"
COI = "CHG123426BEN001"

FLOOR_APP = textwrap.dedent(
    """
    import os, sys
    from flask import Flask
    from sqlalchemy import create_engine, text
    from waitress import serve
    engine = create_engine(os.environ["QMS_DATABASE_URL"], pool_size=20, max_overflow=40)
    with engine.begin() as c:
        c.execute(text("CREATE TABLE IF NOT EXISTS bench_floor (id INTEGER PRIMARY KEY, v TEXT)"))
    app = Flask("floor")
    n = [0]
    @app.post("/insert")
    def insert():
        with engine.begin() as c:
            c.execute(text("INSERT INTO bench_floor (v) VALUES (:v)"), {"v": "x"})
        return "", 201
    serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=int(sys.argv[2]), ident="floor")
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qms(env, *args) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "qms", *args], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"qms {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def wait_up(port: int, path: str, process) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit("the server stopped")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("the server did not start")


def unit_of(i: int) -> str:
    """Client i's own unit: a ward's nurses each look after their own patient."""
    return f"{UNIT}-{i:02d}"


def load_units(env, tmp: Path, nurses: list[str]) -> None:
    """One Kymriah unit per nurse, each at the observation after its infusion."""
    now = datetime.now(SHANGHAI).replace(microsecond=0)

    def at(minutes_ago):
        return (now - timedelta(minutes=minutes_ago)).isoformat()

    steps = [
        ("prescription_check", 90, "zhang.min", {"diagnosis": "DLBCL", "indication_confirmed": True}),
        ("receipt", 85, "chen.jie", {"coi_id": COI, "shipper_id": "S", "logger_id": "L",
                                     "logger_reviewed": True, "shipper_temperature_c": -170}),
        ("storage_in", 80, "chen.jie", {"equipment": "LN2-01", "temperature_c": -160}),
        ("storage_out", 40, "chen.jie", {"equipment": "LN2-01"}),
        ("tocilizumab_check", 38, "chen.jie", {"doses_on_hand": 2}),
        ("identity_check", 35, "li.na", {"product_patient_id": "P-0900",
                                          "wristband_patient_id": "P-0900", "coi_id": COI}),
        ("thaw_start", 30, "li.na", {"temperature_c": 37}),
        ("thaw_end", 25, "li.na", {"temperature_c": 37}),
        ("infusion_start", 20, "li.na", {"rate_ml_min": 15, "filter": "none"}),
        ("infusion_end", 15, "li.na", {}),
    ]  # fmt: skip
    lines = []
    for i in range(len(nurses)):
        unit = unit_of(i)
        lines.append(
            {"type": "unit", "id": unit, "checklist": "kymriah", "site": "SH-01", "profile": "cn",
             "coi_id": COI, "patient": f"P-09{i:02d}", "attributes": {"age_years": 40}}
        )  # fmt: skip
        for step, ago, by, fields in steps:
            if step == "identity_check":
                fields = dict(fields, product_patient_id=f"P-09{i:02d}",
                              wristband_patient_id=f"P-09{i:02d}")  # fmt: skip
            line = {"type": "step", "unit": unit, "step": step, "at": at(ago), "by": by,
                    "fields": fields}  # fmt: skip
            if step == "identity_check":
                line["witness"] = "wang.wei"
            lines.append(line)
    path = tmp / "bench-unit.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    qms(env, "import", str(path))
    from qms.accounts import service as accounts
    from qms.db import Database

    database = Database(env["QMS_DATABASE_URL"])
    with database.transaction() as s:
        for name in nurses:
            accounts.create_user(
                session=s, actor=accounts.Actor.system("bench"), username=name,
                full_name=f"Nurse {name}", role="nurse", password="bench-password-2026",
                site_ids=["SH-01"],
            )  # fmt: skip
    database.engine.dispose()


class Client:
    """One browser: its cookie, its CSRF token, its connection, its own unit.

    `step` sends the live check and the form's POST; `round_trip` follows the redirect
    too, as a browser does (the unit page, which shows the "recorded" message and so takes
    it out of the session cookie); `largest_cookie` shows the cookie stays bounded."""

    def __init__(self, port: int, username: str, unit: str):
        self.port = port
        self.unit = unit
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookie = ""
        self.largest_cookie = 0
        html = self.get("/login")[1]
        token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)
        self.post("/login", {"username": username, "password": "bench-password-2026",
                             "csrf_token": token})  # fmt: skip
        page = self.get(f"/units/{unit}")[1]
        self.token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        self.steps = 0  # observations this client recorded on its unit

    def _cookies(self, response) -> None:
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                self.cookie = value.split(";", 1)[0]
                self.largest_cookie = max(self.largest_cookie, len(self.cookie))

    def get(self, path: str) -> tuple[int, str]:
        self.conn.request("GET", path, headers={"Cookie": self.cookie})
        response = self.conn.getresponse()
        body = response.read().decode()
        self._cookies(response)
        return response.status, body

    def post(self, path: str, form: dict) -> tuple[int, str | None]:
        body = urllib.parse.urlencode(form)
        self.conn.request("POST", path, body=body, headers={
            "Cookie": self.cookie, "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        response = self.conn.getresponse()
        response.read()
        self._cookies(response)
        return response.status, response.getheader("Location")

    def _form(self) -> dict:
        return {
            "csrf_token": self.token, "f-crs_grade": "0", "f-icans_grade": "0",
            "performed_at": datetime.now(SHANGHAI).strftime("%Y-%m-%dT%H:%M:%S"),
            "reason": "bench"}  # fmt: skip

    def _check(self, form: dict) -> bool:
        body = urllib.parse.urlencode(form)
        self.conn.request("POST", f"/units/{self.unit}/steps/observation/check", body=body,
                          headers={"Cookie": self.cookie, "Accept": "application/json",
                                   "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        response = self.conn.getresponse()
        answer = response.read()
        return response.status == 200 and b'"findings"' in answer

    def step(self) -> tuple[bool, float]:
        """The step alone: the live check, then the form's POST (the redirect not followed,
        the cookie kept as it was). (recorded, seconds of the POST alone)."""
        form = self._form()
        cookie = self.cookie
        checked = self._check(form)
        started = time.perf_counter()
        status, location = self.post(f"/units/{self.unit}/steps/observation", form)
        posted = time.perf_counter() - started
        self.cookie = cookie
        self.steps += 1
        return checked and status == 302 and bool(location), posted

    def round_trip(self) -> tuple[bool, float]:
        """The live check, the POST, and the unit page it redirects to, as a browser does.
        (recorded and shown, seconds of the POST alone)."""
        form = self._form()
        checked = self._check(form)
        started = time.perf_counter()
        status, location = self.post(f"/units/{self.unit}/steps/observation", form)
        posted = time.perf_counter() - started
        self.steps += 1
        if status != 302 or not location:
            return False, posted
        status, page = self.get(urllib.parse.urlsplit(location)._replace(
            scheme="", netloc="", fragment="").geturl())  # fmt: skip
        return checked and status == 200 and "flash-success" in page, posted


def hammer(make_request, clients: int, seconds: float) -> dict:
    """Each client sends as fast as it can for `seconds`: completed requests/s, the median
    and p99 of each one's whole time and of its first part (the POST alone)."""
    whole: list[float] = []
    first: list[float] = []
    errors = [0]
    lock = threading.Lock()
    workers = [make_request(i) for i in range(clients)]  # signed in before the clock starts
    stop = time.monotonic() + seconds

    def run(send):
        mine, parts = [], []
        while time.monotonic() < stop:
            started = time.perf_counter()
            ok, part = send()
            mine.append(time.perf_counter() - started)
            parts.append(part)
            if not ok:
                errors[0] += 1
        with lock:
            whole.extend(mine)
            first.extend(parts)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    return {
        "rate": len(whole) / elapsed,
        "median": _quantile(whole, 0.5),
        "p99": _quantile(whole, 0.99),
        "post_median": _quantile(first, 0.5),
        "post_p99": _quantile(first, 0.99),
        "errors": errors[0],
        "workers": workers,
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if q == 0.5:
        return statistics.median(ordered)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def floor_sender(port: int):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def send() -> tuple[bool, float]:
        started = time.perf_counter()
        conn.request("POST", "/insert", body=b"")
        response = conn.getresponse()
        response.read()
        return response.status == 201, time.perf_counter() - started

    return send


def run_backend(backend: str, clients_list: list[int], seconds: float, tmp: Path) -> None:
    url, drop = new_database(backend, tmp)
    env = dict(os.environ, QMS_DATABASE_URL=url, QMS_INSTANCE_PATH=str(tmp / f"inst-{backend}"),
               QMS_SECURE_COOKIES="0", QMS_SIGNATURE_FRESHNESS_MINUTES="60")  # fmt: skip
    processes = []
    try:
        qms(env, "init-db")
        qms(env, "demo")
        most = max(clients_list)
        nurses = [f"bench.nurse{i:02d}" for i in range(most)]
        load_units(env, tmp, nurses)
        port, floor_port = free_port(), free_port()
        log = open(tmp / f"serve-{backend}.log", "w")  # noqa: SIM115
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "qms", "serve", "--port", str(port), "--threads", str(THREADS)],
            env=env, stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
        processes.append(subprocess.Popen(
            [sys.executable, "-c", FLOOR_APP, str(floor_port), str(THREADS)],
            env=env, stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
        wait_up(port, "/healthz", processes[0])
        wait_up(floor_port, "/nothing", processes[1])
        records = 10  # each unit's records before the bench (bench-unit.jsonl)
        clients_by_index: dict[int, Client] = {}

        def client(i: int) -> Client:
            if i not in clients_by_index:
                clients_by_index[i] = Client(port, nurses[i], unit_of(i))
            return clients_by_index[i]

        for clients in clients_list:
            floor = hammer(lambda i: floor_sender(floor_port), clients, seconds)
            step = hammer(lambda i: client(i).step, clients, seconds)
            trip = hammer(lambda i: client(i).round_trip, clients, seconds)
            cookie = max(w.__self__.largest_cookie for w in trip["workers"])
            busiest = records + max(c.steps for c in clients_by_index.values())
            line = (
                f"floor (bare Flask insert): {floor['rate']:6.1f} req/s, median "
                f"{floor['median'] * 1000:5.1f} ms, p99 {floor['p99'] * 1000:6.1f} ms"
            )
            print(f"{backend:10} {clients:>2} clients  {line}", flush=True)
            for name, run in (("step (live check + POST)", step),
                              ("round trip (+ unit page)", trip)):  # fmt: skip
                print(
                    f"{backend:10} {clients:>2} clients  {name}: {run['rate']:6.1f} steps/s, "
                    f"median {run['median'] * 1000:6.1f} ms, p99 {run['p99'] * 1000:7.1f} ms "
                    f"(POST alone: median {run['post_median'] * 1000:5.1f} ms, p99 "
                    f"{run['post_p99'] * 1000:6.1f} ms), errors {run['errors']}  |  "
                    f"{run['rate'] / floor['rate']:.1%} of the floor's throughput, p99 "
                    f"{run['p99'] / floor['p99']:.1f}x the floor's",
                    flush=True,
                )
            print(
                f"{backend:10} {clients:>2} clients  largest cookie {cookie} B, busiest unit "
                f"{busiest} records",
                flush=True,
            )
        verified = qms(env, "verify")
        print(f"{backend:10} qms verify: {verified.stdout.strip().splitlines()[-1]}")
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--clients", default="1,10,50")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            run_backend(backend, clients, args.seconds, Path(tmp))


if __name__ == "__main__":
    main()
