"""Sign-in benchmark: sign-ins per second with many clients at once, on SQLite.

    .venv/bin/python bench/sign_in.py [--clients 20] [--seconds 20]

A fresh SQLite database with one user per client (production Argon2id parameters);
each client (a thread with its own test client of the real app) signs in through the
real form, again and again, for the given time. Printed beside the measured rate, from
the same run: one password hash's time, the rate if sign-ins were serialised (one hash
at a time: what a write lock held while hashing gives), the rate the cores allow if
hashing ran in parallel, and the rate of password checks alone by as many threads (what
the machine gives right now, other load included). Meanwhile another writer (a ward's
record) takes SQLite's write lock every 50 ms: how long it waits is printed too.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qms.accounts import passwords  # noqa: E402
from qms.accounts import service as accounts  # noqa: E402
from qms.config import Settings  # noqa: E402
from qms.db import Database, migrate  # noqa: E402
from qms.web.app import create_app  # noqa: E402

PASSWORD = "a-bench-password-for-sign-in"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="qms-bench-sign-in-"))
    url = f"sqlite:///{tmp / 'bench.sqlite3'}"
    migrate(url)
    database = Database(url)
    with database.transaction() as s:
        accounts.create_site(session=s, site_id="SH-01", name="Bench hospital")
        s.flush()
        for n in range(args.clients):
            accounts.create_user(
                session=s,
                actor=accounts.Actor.system("bench"),
                username=f"bench.{n}",
                full_name=f"Bench {n}",
                role="nurse",
                password=PASSWORD,
                site_ids=["SH-01"],
            )
    settings = Settings(
        instance_path=tmp,
        database_url=url,
        secret_key="bench",
        secure_cookies=False,
        # The lockout is not what is measured: every sign-in here is right.
        lockout_threshold=1_000_000,
    )
    app = create_app(settings)
    app.config["WTF_CSRF_ENABLED"] = False

    # The floor and the ceiling, measured now on this machine.
    stored = passwords.hash_password(PASSWORD)
    start = time.perf_counter()
    rounds = 5
    for _ in range(rounds):
        passwords.verify_password(stored, PASSWORD)
    one_hash = (time.perf_counter() - start) / rounds
    cores = len(os.sched_getaffinity(0))

    def hashes_per_second(seconds: float) -> float:
        """Password checks alone, by all the clients at once: what the cores give now."""
        counts = [0] * args.clients
        until = time.perf_counter() + seconds

        def check(n: int) -> None:
            while time.perf_counter() < until:
                passwords.verify_password(stored, PASSWORD)
                counts[n] += 1

        workers = [threading.Thread(target=check, args=(n,)) for n in range(args.clients)]
        began = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return sum(counts) / (time.perf_counter() - began)

    parallel = hashes_per_second(min(args.seconds, 10.0))

    done = [0] * args.clients
    failed = [0] * args.clients
    stop = time.perf_counter() + args.seconds

    def client(n: int) -> None:
        c = app.test_client()
        while time.perf_counter() < stop:
            c._cookies.clear()
            response = c.post("/login", data={"username": f"bench.{n}", "password": PASSWORD})
            if response.status_code == 302:
                done[n] += 1
            else:
                failed[n] += 1

    waits: list[float] = []

    def other_writer() -> None:
        """A ward's writes meanwhile: how long each waits for SQLite's write lock."""
        import sqlite3

        connection = sqlite3.connect(tmp / "bench.sqlite3", timeout=60, isolation_level=None)
        while time.perf_counter() < stop:
            began = time.perf_counter()
            connection.execute("BEGIN IMMEDIATE")
            waits.append(time.perf_counter() - began)
            connection.execute("COMMIT")
            time.sleep(0.05)
        connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    threads.append(threading.Thread(target=other_writer))
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    total = sum(done)
    print(f"clients: {args.clients}, seconds: {elapsed:.1f}, cores: {cores}")
    print(f"one password hash: {one_hash * 1000:.0f} ms")
    print(f"floor (sign-ins serialised, one hash at a time): {1 / one_hash:.1f} sign-ins/s")
    print(f"ceiling (hashes in parallel on {cores} cores): {cores / one_hash:.1f} sign-ins/s")
    print(f"password checks alone, {args.clients} at once, now: {parallel:.1f} /s")
    print(f"measured: {total / elapsed:.1f} sign-ins/s ({total} signed in, {sum(failed)} refused)")
    waits.sort()
    if waits:
        print(
            f"another writer's wait for the write lock meanwhile: median "
            f"{waits[len(waits) // 2] * 1000:.0f} ms, 95th percentile "
            f"{waits[int(len(waits) * 0.95)] * 1000:.0f} ms, max {waits[-1] * 1000:.0f} ms "
            f"({len(waits)} writes)"
        )


if __name__ == "__main__":
    main()
