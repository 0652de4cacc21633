#!/usr/bin/env python3
"""Runs the workspace's test binaries, its doc tests and the suites named with --suite, a few
at a time, and fails if any of them fails.

`cargo test --workspace` runs one test binary after another: the moto and end-to-end binaries
spend most of their two minutes waiting on servers (moto, the Lambda stack, `serve`), so one
core idles while the other waits. This runs the same binaries, built by the same `cargo test
--workspace` (same features, no rebuild: the caller has built them), each as cargo would run it:
from its package's directory, with cargo's CARGO_MANIFEST_DIR / CARGO_PKG_NAME / CARGO set.
Doc tests run through `cargo test --workspace --doc`.

Each job's output is kept and printed whole when the job ends (failed jobs last, again, so a
failure is at the end of the log), then one line per job with its seconds.

Usage: infra/run-tests.py [--jobs N] [--suite NAME=COMMAND]...
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

CARGO = os.environ.get("CARGO", "cargo")

# Longest first (measured in `make ci`), so that the long jobs start at once and the short ones
# fill the gaps: a job not listed here counts as short.
LONG_FIRST = ["aws/moto", "tests/e2e", "suite/schemathesis", "suite/browser", "http/admin"]


@dataclass
class Job:
    name: str
    argv: list[str]
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    seconds: float = 0.0
    output: str = ""


def test_binaries() -> list[Job]:
    """The executables `cargo test --workspace` runs, from cargo's own build messages."""
    out = subprocess.run(
        [CARGO, "test", "--workspace", "--no-run", "--message-format=json-render-diagnostics"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    jobs = []
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg["profile"]["test"]:
            continue
        manifest_dir = os.path.dirname(msg["manifest_path"])
        pkg_name = package_name(msg["package_id"]) or msg["target"]["name"]
        kind = msg["target"]["kind"][0]
        short = os.path.basename(manifest_dir.rstrip("/"))
        target = msg["target"]["name"] if kind == "test" else f"{kind}:{msg['target']['name']}"
        jobs.append(
            Job(
                name=f"{short}/{target}",
                argv=[msg["executable"]],
                cwd=manifest_dir,
                env={
                    "CARGO": CARGO,
                    "CARGO_MANIFEST_DIR": manifest_dir,
                    "CARGO_PKG_NAME": pkg_name,
                },
            )
        )
    if not jobs:
        sys.exit("run-tests: cargo listed no test binaries")
    return jobs


def package_name(package_id: str) -> str | None:
    # "path+file:///work/main/crates/core#tracklayer-core@0.1.0" or the older
    # "tracklayer-core 0.1.0 (path+file:///…)".
    # "path+file:///work/main/crates/tracklayer#0.1.0" when the name is the directory's.
    if "#" in package_id:
        url, tail = package_id.rsplit("#", 1)
        return tail.split("@", 1)[0] if "@" in tail else url.rstrip("/").rsplit("/", 1)[-1]
    return package_id.split(" ", 1)[0] or None


def run(job: Job) -> Job:
    env = dict(os.environ, **job.env)
    start = time.monotonic()
    with tempfile.TemporaryFile(mode="w+") as log:
        job.status = subprocess.run(
            job.argv, cwd=job.cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        ).returncode
        log.seek(0)
        job.output = log.read()
    job.seconds = time.monotonic() - start
    return job


def order(jobs: list[Job]) -> list[Job]:
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    return sorted(jobs, key=lambda j: rank.get(j.name, len(LONG_FIRST)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--suite", action="append", default=[], metavar="NAME=COMMAND")
    args = parser.parse_args()
    jobs = test_binaries()
    jobs.append(Job(name="doc-tests", argv=[CARGO, "test", "--workspace", "--doc"]))
    for suite in args.suite:
        name, _, command = suite.partition("=")
        if not command:
            parser.error(f"--suite {suite!r}: expected NAME=COMMAND")
        jobs.append(Job(name=f"suite/{name}", argv=["bash", "-euo", "pipefail", "-c", command]))
    print(f"run-tests: {len(jobs)} jobs, {args.jobs} at a time", flush=True)
    started = time.monotonic()
    done: list[Job] = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for future in as_completed([pool.submit(run, job) for job in order(jobs)]):
            job = future.result()
            done.append(job)
            verdict = "ok" if job.status == 0 else f"FAILED (exit {job.status})"
            print(f"\n===== {job.name}: {verdict} in {job.seconds:.1f} s", flush=True)
            print(job.output, end="" if job.output.endswith("\n") else "\n", flush=True)
    failed = [j for j in done if j.status != 0]
    for job in failed:
        print(f"\n===== again, the output of the failed job {job.name} "
              f"({shlex.join(job.argv)})\n{job.output}", flush=True)
    print(f"\nrun-tests: {len(done)} jobs in {time.monotonic() - started:.0f} s "
          f"({args.jobs} at a time); the longest:")
    for job in sorted(done, key=lambda j: -j.seconds)[:8]:
        print(f"  {job.seconds:7.1f} s  {job.name}{'' if job.status == 0 else '  FAILED'}")
    if failed:
        print(f"run-tests: {len(failed)} failed: {', '.join(j.name for j in failed)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
