"""Benchmark of command start-up: `qms identify <a DIN>` as an operator runs it.

    .venv/bin/python bench/cli_startup.py [--runs 7]

Each case is started as a fresh subprocess, several times; the median wall and CPU
(user + system, of the child) time are printed next to, from the same run:
  - the floor: `python -c pass`, and `python -c "import qms"`;
  - the old path: building the web app (`qms.create_app()`, which also loads every
    command, as the `qms` script did for any command before) and then running the same
    command on the app's command line.
Every case runs in an empty temporary folder with its own instance path; the script
says whether a case left a file behind.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIN = "=G12341765432170"

OLD_PATH = f"""
import sys
import qms
app = qms.create_app()
app.cli.main(["identify", {DIN!r}], prog_name="qms")
"""

CASES = [
    ("python -c pass (floor)", [sys.executable, "-c", "pass"]),
    ('python -c "import qms"', [sys.executable, "-c", "import qms"]),
    (f"qms identify {DIN}", [sys.executable, "-m", "qms", "identify", DIN]),
    ("old path: create_app(), then identify", [sys.executable, "-c", OLD_PATH]),
]


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per case (median shown)")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith("QMS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, argv in CASES:
            folder = Path(tmp) / f"case{len(results)}"
            folder.mkdir()
            case_env = dict(env, QMS_INSTANCE_PATH=str(folder / "instance"))
            run_once(argv, case_env, folder)  # warm the file cache and the bytecode
            times = [run_once(argv, case_env, folder) for _ in range(args.runs)]
            wall = statistics.median(t[0] for t in times)
            cpu = statistics.median(t[1] for t in times)
            left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
            results.append((label, wall, cpu, left))

    print(f"command start-up, median of {args.runs} runs each ({sys.executable})")
    print(f"{'case':44} {'wall ms':>8} {'cpu ms':>8}  files left behind")
    for label, wall, cpu, left in results:
        print(f"{label:44} {wall * 1000:8.0f} {cpu * 1000:8.0f}  {', '.join(left) or '-'}")
    (_, floor_wall, floor_cpu, _), _, (_, new_wall, new_cpu, _), (_, old_wall, old_cpu, _) = results
    print(
        f"qms identify takes {new_wall / old_wall:.0%} of the old path's wall time and "
        f"{new_cpu / old_cpu:.0%} of its CPU time; above the floor: "
        f"{(new_cpu - floor_cpu) * 1000:.0f} ms CPU now, {(old_cpu - floor_cpu) * 1000:.0f} ms before"
    )


if __name__ == "__main__":
    main()
