"""A ytdlp-host backend in Python: weighted random choice.

Each proxy has a weight; `get-proxy` picks one at random in proportion to
its weight, so a fast or paid-for proxy can take more of the traffic than a
slow one. Proxy faults (connect, timeout, auth) halve a proxy's effective
weight until its next success, and `failure_threshold` of them in a row send
it cooling down for `cooldown_ms`. A `blocked` failure keeps that proxy away
from that site (`host.site`) for `block_ms`; other kinds never count against
a proxy.

Options (from the config at init, and from each call, so that
`--backend-opt proxy=URL` works too):
    proxy=URL                 a proxy of weight 1 (repeatable)
    weight=URL=N              a proxy of weight N (0-1000; 0: never chosen)
    timeout_ms=N              socket timeout handed to yt-dlp (default 30000)
    failure_threshold=N       consecutive proxy faults before a cool-down (3)
    cooldown_ms=N             length of that cool-down (60000)
    block_ms=N                how long a site's block keeps a proxy away (600000)
    seed=N                    seed the random choice (reproducible runs)

Build: see README.md (componentize-py, world `proxy-backend-with-stats`).
"""

import random
import time
from typing import Dict, List, Optional, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import (
    Failure,
    FailureKind,
    GetProxyError_BackendUnavailable,
    GetProxyError_NoProxyAvailable,
    NoProxy,
    Proxy,
    ProxyState_Active,
    ProxyState_CoolingDown,
    ProxyStats,
)

Options = List[Tuple[str, str]]

SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")
PROXY_FAULTS = (
    FailureKind.PROXY_CONNECT,
    FailureKind.PROXY_TIMEOUT,
    FailureKind.PROXY_AUTH,
)


def now_ms() -> int:
    return int(time.time() * 1000)


def last(options: Options, key: str) -> Optional[str]:
    """The last value of `key` (the contract: single values take the last)."""
    found = None
    for k, v in options:
        if k == key:
            found = v
    return found


def int_option(options: Options, key: str, default: int, lo: int, hi: int) -> int:
    raw = last(options, key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Err(f"option `{key}`: `{raw}` is not a whole number")
    if not lo <= value <= hi:
        raise Err(f"option `{key}`: {value} is outside {lo}..{hi}")
    return value


def check_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES or not rest:
        raise Err(f"`{url}` is not a proxy URL (scheme://host:port, scheme one of {', '.join(SCHEMES)})")
    return url


def add_proxies(state: "State", options: Options) -> None:
    """Adds the `proxy` and `weight` entries of `options` (raises Err(str))."""
    for key, value in options:
        if key == "proxy":
            url = check_url(value.strip())
            state.proxies.setdefault(url, ProxyEntry(url, 1))
        elif key == "weight":
            url, sep, n = value.strip().rpartition("=")
            if not sep:
                raise Err(f"option `weight`: `{value}` is not URL=N")
            try:
                weight = int(n)
            except ValueError:
                raise Err(f"option `weight`: `{n}` is not a whole number")
            if not 0 <= weight <= 1000:
                raise Err(f"option `weight`: {weight} is outside 0..1000")
            url = check_url(url)
            state.proxies.setdefault(url, ProxyEntry(url, weight)).weight = weight


class ProxyEntry:
    def __init__(self, url: str, weight: int):
        self.url = url
        self.weight = weight
        self.successes = 0
        self.failures = 0
        self.consecutive = 0
        self.cooling_until = 0
        self.last_used_ms: Optional[int] = None
        self.blocked_until: Dict[str, int] = {}
        self.by_kind: Dict[str, int] = {}

    def effective_weight(self) -> float:
        return self.weight * (0.5 ** self.consecutive)


class State:
    def __init__(self) -> None:
        self.proxies: Dict[str, ProxyEntry] = {}
        self.timeout_ms = 30_000
        self.threshold = 3
        self.cooldown_ms = 60_000
        self.block_ms = 600_000
        self.rng = random.Random()


STATE = State()


class Backend(exports.Backend):
    def init(self, options: Options) -> None:
        state = State()
        state.timeout_ms = int_option(options, "timeout_ms", 30_000, 1, 600_000)
        state.threshold = int_option(options, "failure_threshold", 3, 1, 1_000_000)
        state.cooldown_ms = int_option(options, "cooldown_ms", 60_000, 0, 86_400_000)
        state.block_ms = int_option(options, "block_ms", 600_000, 0, 86_400_000)
        seed = last(options, "seed")
        if seed is not None:
            state.rng = random.Random(seed)
        add_proxies(state, options)
        global STATE
        STATE = state

    def get_proxy(self, options: Options) -> Proxy:
        state = STATE
        # A download's own options (`--backend-opt proxy=URL`) reach only the
        # calls, not init: proxies named there join the pool (keeping the
        # health of those already known).
        try:
            add_proxies(state, options)
        except Err as e:
            raise Err(GetProxyError_BackendUnavailable(str(e.value)))
        if not state.proxies:
            raise Err(GetProxyError_NoProxyAvailable(NoProxy(
                "no proxies configured (options `proxy=URL` or `weight=URL=N`)", None)))
        now = now_ms()
        site = last(options, "host.site") or ""
        candidates: List[ProxyEntry] = []
        back_at: List[int] = []
        for p in state.proxies.values():
            if p.weight == 0:
                continue
            if p.cooling_until > now:
                back_at.append(p.cooling_until)
                continue
            until = p.blocked_until.get(site, 0)
            if until > now:
                back_at.append(until)
                continue
            candidates.append(p)
        if not candidates:
            return_at = min(back_at) if back_at else None
            raise Err(GetProxyError_NoProxyAvailable(NoProxy(
                "every proxy is cooling down or blocked for this site", return_at)))
        chosen = state.rng.choices(candidates, weights=[p.effective_weight() for p in candidates])[0]
        chosen.last_used_ms = now
        return Proxy(chosen.url, state.timeout_ms)

    def report_success(self, proxy_url: str, options: Options) -> None:
        p = STATE.proxies.get(proxy_url)
        if p is None:
            return
        p.successes += 1
        p.consecutive = 0
        p.cooling_until = 0

    def report_failure(self, proxy_url: str, failure: Failure, options: Options) -> None:
        state = STATE
        p = state.proxies.get(proxy_url)
        if p is None:
            return
        p.failures += 1
        name = failure.kind.name.lower().replace("_", "-")
        p.by_kind[name] = p.by_kind.get(name, 0) + 1
        if failure.kind in PROXY_FAULTS:
            p.consecutive += 1
            if p.consecutive >= state.threshold:
                p.cooling_until = now_ms() + state.cooldown_ms
        elif failure.kind == FailureKind.BLOCKED:
            site = last(options, "host.site")
            if site:
                p.blocked_until[site] = now_ms() + state.block_ms
        # content, host, unknown: never the proxy's fault.


class Stats(exports.Stats):
    def get_stats(self, options: Options) -> List[ProxyStats]:
        now = now_ms()
        rows = []
        for p in STATE.proxies.values():
            state = ProxyState_CoolingDown(p.cooling_until) if p.cooling_until > now else ProxyState_Active()
            blocked = sorted(s for s, until in p.blocked_until.items() if until > now)
            extra = [("weight", str(p.weight)), ("effective-weight", f"{p.effective_weight():g}")]
            if blocked:
                extra.append(("blocked-sites", ",".join(blocked)))
            extra.extend((f"failures-{k}", str(n)) for k, n in sorted(p.by_kind.items()))
            rows.append(ProxyStats(p.url, p.successes, p.failures, min(p.consecutive, 2**32 - 1),
                                   state, p.last_used_ms, extra))
        return rows
