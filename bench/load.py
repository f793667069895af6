"""Load from a separate process: wrk (C, from Debian's packages) when installed.

Without wrk, a plain sequential Python client measures latency and a thread pool
measures throughput; the report says which tool measured each figure, since a
Python client spends CPU on the same two cores as the server.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: str | None = None

    def send(self, http: httpx.Client, headers: dict[str, str]) -> httpx.Response:
        extra = {"Content-Type": "application/json"} if self.body is not None else {}
        return http.request(self.method, self.path, content=self.body, headers={**headers, **extra})


@dataclass(frozen=True)
class Measured:
    median_ms: float
    p99_ms: float
    rate: float  # requests per second
    requests: int
    errors: int
    tool: str


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _lua(calls: Sequence[Call], headers: dict[str, str]) -> str:
    entries = ",\n".join(
        "{"
        + f"method={json.dumps(c.method)}, path={json.dumps(c.path)}, body="
        + (json.dumps(c.body) if c.body is not None else "nil")
        + "}"
        for c in calls
    )
    header_lines = "\n".join(
        f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()
    )
    return f"""
local calls = {{
{entries}
}}
{header_lines}
wrk.headers["Content-Type"] = "application/json"
local i = 0
request = function()
  i = (i % #calls) + 1
  local c = calls[i]
  return wrk.format(c.method, c.path, nil, c.body)
end
"""


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    assert match, value
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(
    base_url: str,
    calls: Sequence[Call],
    headers: dict[str, str],
    *,
    connections: int,
    seconds: float,
) -> Measured:
    """wrk with ``connections`` connections on one thread, cycling through ``calls``."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua(calls, headers))
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--latency",
                "-s",
                script.name,
                base_url,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        Path(script.name).unlink()
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.MULTILINE))
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    if failed:
        errors += sum(int(g) for g in failed.groups())
    return Measured(_ms(percentiles["50"]), _ms(percentiles["99"]), rate, total, errors, "wrk")


def run_sequential(
    base_url: str, calls: Sequence[Call], headers: dict[str, str], *, requests: int
) -> Measured:
    """One request at a time from Python; each latency is the full round trip."""
    times: list[float] = []
    errors = 0
    with httpx.Client(base_url=base_url, timeout=120) as http:
        started = time.perf_counter()
        for n in range(requests):
            call = calls[n % len(calls)]
            t = time.perf_counter()
            response = call.send(http, headers)
            response.read()
            times.append((time.perf_counter() - t) * 1000)
            errors += response.status_code >= 400
        elapsed = time.perf_counter() - started
    times.sort()
    return Measured(
        statistics.median(times),
        times[min(len(times) - 1, int(len(times) * 0.99))],
        requests / elapsed,
        requests,
        errors,
        "python",
    )


def run_concurrent(
    base_url: str,
    calls: Sequence[Call],
    headers: dict[str, str],
    *,
    connections: int,
    seconds: float,
) -> Measured:
    """Throughput at ``connections`` connections: wrk if installed, else Python threads."""
    if wrk_available():
        return run_wrk(base_url, calls, headers, connections=connections, seconds=seconds)
    deadline = time.perf_counter() + seconds

    def worker(offset: int) -> tuple[list[float], int]:
        times: list[float] = []
        errors = 0
        with httpx.Client(base_url=base_url, timeout=60) as http:
            n = offset
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                response = calls[n % len(calls)].send(http, headers)
                times.append((time.perf_counter() - t) * 1000)
                errors += response.status_code >= 400
                n += connections
        return times, errors

    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        results = list(pool.map(worker, range(connections)))
    elapsed = time.perf_counter() - started
    times = sorted(t for r in results for t in r[0])
    return Measured(
        statistics.median(times),
        times[min(len(times) - 1, int(len(times) * 0.99))],
        len(times) / elapsed,
        len(times),
        sum(r[1] for r in results),
        "python-threads",
    )


def run_one_at_a_time(
    base_url: str,
    calls: Sequence[Call],
    headers: dict[str, str],
    *,
    requests: int,
    estimate_ms: float,
) -> Measured:
    """Sequential latency: one connection, one request at a time. With wrk (a C client,
    whose own cost per request is a few microseconds) for long enough to send about
    ``requests``; otherwise the Python client, whose own cost (about 0.3 ms a request
    here) is then part of every figure."""
    if not wrk_available():
        return run_sequential(base_url, calls, headers, requests=requests)
    seconds = min(120.0, max(2.0, requests * estimate_ms / 1000 * 1.3))
    return run_wrk(base_url, calls, headers, connections=1, seconds=seconds)
