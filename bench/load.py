"""Load from a separate process: wrk (C, from Debian's packages) when installed.

Without wrk, a plain sequential Python client measures latency and a thread pool
measures throughput; the report says which tool measured each figure, since a
Python client spends CPU on the same two cores as the server.

Every answer is checked, whichever tool sent it: a status outside 2xx, or a socket
error, is a failure, counted by what it was (``401 invalid_authorization``,
``socket read``). The Python clients also check each body against what its call
expects (``Call.expect``); wrk's Lua script counts statuses only, so the suite sends
every distinct call once from Python first (``run_sequential``) to check its body.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


#: What is wrong with an answer's parsed JSON body, or None when it is what was asked for.
Expect = Callable[[Any], str | None]


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: str | None = None
    expect: Expect | None = field(default=None, compare=False)

    def send(self, http: httpx.Client, headers: dict[str, str]) -> httpx.Response:
        extra = {"Content-Type": "application/json"} if self.body is not None else {}
        return http.request(self.method, self.path, content=self.body, headers={**headers, **extra})


@dataclass(frozen=True)
class Measured:
    median_ms: float  # NaN when no request got an answer
    p99_ms: float
    rate: float  # requests per second
    requests: int
    tool: str
    #: What went wrong, and how many times: ``{"401 invalid_authorization": 20}``.
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(self.failures.values())


def problem(response: httpx.Response, expect: Expect | None) -> str | None:
    """What is wrong with an answer (a status outside 2xx, with the error type its body
    names, or a body that is not what was expected), or None."""
    status = response.status_code
    if not 200 <= status < 300:
        return f"{status} {error_type(response.content)}"
    if expect is None:
        return None
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return f"{status} but the body is not JSON"
    wrong = expect(body)
    return None if wrong is None else f"{status} but {wrong}"


def error_type(content: bytes) -> str:
    """The ``error.type`` of an error body (the spec's shape), or what stands in its place."""
    try:
        kind = orjson.loads(content)["error"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "(no error body)"
    return str(kind["type"] if isinstance(kind, dict) else kind)


def _latencies(times: list[float]) -> tuple[float, float]:
    """Median and p99 of some latencies; NaN for none."""
    if not times:
        return math.nan, math.nan
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


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
-- Every answer's status; for one outside 2xx, the error type its body names.
failures = {{}}
response = function(status, headers, body)
  if status < 200 or status > 299 then
    local kind = string.match(body, '"type":"([%w_]+)"')
      or string.match(body, '"error":"([%w_]+)"')  -- OAuth's errors
    local key = status .. " " .. (kind or "(no error body)")
    failures[key] = (failures[key] or 0) + 1
  end
end
local threads = {{}}
setup = function(thread)
  table.insert(threads, thread)
end
done = function(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for key, count in pairs(thread:get("failures")) do
      io.write("roster-failure\\t" .. key .. "\\t" .. count .. "\\n")
    end
  end
  for name, count in pairs(summary.errors) do
    if name ~= "status" and count > 0 then
      io.write("roster-failure\\tsocket " .. name .. "\\t" .. count .. "\\n")
    end
  end
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
    """wrk with ``connections`` connections on one thread, cycling through ``calls``;
    its Lua script counts the answers outside 2xx and the socket errors."""
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
                "--timeout",
                "60s",  # wrk's default, 2 s, would count a slow answer as a socket error
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
    return _wrk_measured(out)


def _wrk_measured(out: str) -> Measured:
    """wrk's report, with the failures its Lua script wrote; wrk's own count of answers
    of 400 and over ("Non-2xx or 3xx responses") must agree with the script's."""
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.MULTILINE))
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    failures = {
        key: int(count) for key, count in re.findall(r"^roster-failure\t(.+)\t(\d+)$", out, re.M)
    }
    said = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    counted = sum(n for key, n in failures.items() if key[:3].isdigit() and int(key[:3]) >= 400)
    if said and int(said.group(1)) != counted:
        failures["wrk counted more answers of 400 and over than its script"] = int(said.group(1))
    if not total or not percentiles:  # no answer at all
        return Measured(math.nan, math.nan, rate, total, "wrk", failures)
    return Measured(_ms(percentiles["50"]), _ms(percentiles["99"]), rate, total, "wrk", failures)


def run_sequential(
    base_url: str, calls: Sequence[Call], headers: dict[str, str], *, requests: int
) -> Measured:
    """One request at a time from Python; each latency is the full round trip. Each
    answer is checked after its time is taken."""
    times: list[float] = []
    failures: Counter[str] = Counter()
    with httpx.Client(base_url=base_url, timeout=120) as http:
        started = time.perf_counter()
        for n in range(requests):
            call = calls[n % len(calls)]
            t = time.perf_counter()
            try:
                response = call.send(http, headers)
            except httpx.TransportError as error:
                failures[type(error).__name__] += 1
                continue
            times.append((time.perf_counter() - t) * 1000)
            if wrong := problem(response, call.expect):
                failures[wrong] += 1
        elapsed = time.perf_counter() - started
    median, p99 = _latencies(times)
    return Measured(median, p99, requests / elapsed, requests, "python", dict(failures))


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

    def worker(offset: int) -> tuple[list[float], Counter[str]]:
        times: list[float] = []
        failures: Counter[str] = Counter()
        with httpx.Client(base_url=base_url, timeout=60) as http:
            n = offset
            while time.perf_counter() < deadline:
                call = calls[n % len(calls)]
                n += connections
                t = time.perf_counter()
                try:
                    response = call.send(http, headers)
                except httpx.TransportError as error:
                    failures[type(error).__name__] += 1
                    continue
                times.append((time.perf_counter() - t) * 1000)
                if wrong := problem(response, call.expect):
                    failures[wrong] += 1
        return times, failures

    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        results = list(pool.map(worker, range(connections)))
    elapsed = time.perf_counter() - started
    times = [t for r in results for t in r[0]]
    failures = sum((r[1] for r in results), Counter[str]())
    median, p99 = _latencies(times)
    return Measured(median, p99, len(times) / elapsed, len(times), "python-threads", dict(failures))


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
    estimate_ms = 1.0 if math.isnan(estimate_ms) else estimate_ms
    seconds = min(120.0, max(2.0, requests * estimate_ms / 1000 * 1.3))
    return run_wrk(base_url, calls, headers, connections=1, seconds=seconds)
