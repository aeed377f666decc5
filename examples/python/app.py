"""A ytdlp-host backend in Python: weighted random choice.

Contract `ytdlp:proxy@0.2.0`, world `proxy-backend-with-stats`.

Each proxy has a weight; `get-proxy` picks one at random in proportion to
its weight, so a fast or paid-for proxy can take more of the traffic than a
slow one. Only proxies that fit the request are candidates: not in
`request.avoid` (unless nothing else is left), inside `request.want`
(regions, tags, tier range), and of the cheapest tier among those. Proxy
faults (connect, timeout, auth) halve a proxy's effective weight until its
next success, and `failure_threshold` of them in a row send it cooling down
for `cooldown_ms`. A `blocked` failure keeps that proxy away from that site
(`request.site.domain`) for the site's `Retry-After` when it sent one, else
for `block_ms`; a `Retry-After` from the proxy layer itself (a vendor's rate
limit) cools the whole proxy down that long. Other kinds never count
against a proxy.

Options (from the config at init, and from each call, so that
`--backend-opt proxy=URL` works too):
    proxy=SPEC                a proxy of weight 1 (repeatable)
    weight=SPEC=N             a proxy of weight N (0-1000; 0: never chosen)
    timeout_ms=N              socket timeout handed to yt-dlp (default 30000)
    failure_threshold=N       consecutive proxy faults before a cool-down (3)
    cooldown_ms=N             length of that cool-down (60000)
    block_ms=N                how long a site's block keeps a proxy away (600000)
    seed=N                    seed the random choice (reproducible runs)
where SPEC is `scheme://[user:password@]host:port[;region=CC][;tags=a,b][;tier=N]`.

Build: see README.md (componentize-py, world `proxy-backend-with-stats`).
"""

import random
import time
from typing import Dict, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import (
    Credentials,
    Failure,
    FailureKind,
    GetProxyError_BackendUnavailable,
    GetProxyError_NoProxyAvailable,
    InvalidValue,
    NoProxy,
    PluginError_InvalidValue,
    PluginError_UnknownOption,
    Proxy,
    ProxyMeta,
    ProxyState_Active,
    ProxyState_CoolingDown,
    ProxyStats,
    Request,
    Scheme,
    Success,
    Wanted,
)

Options = List[Tuple[str, str]]

KNOWN_OPTIONS = ("proxy", "weight", "timeout_ms", "failure_threshold", "cooldown_ms", "block_ms", "seed")
SCHEMES = {s.name.lower(): s for s in Scheme}
PROXY_FAULTS = (
    FailureKind.PROXY_CONNECT,
    FailureKind.PROXY_TIMEOUT,
    FailureKind.PROXY_AUTH,
)


class BadValue(Exception):
    """An option value this plugin cannot use: `reason` says why."""


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
        raise Err(PluginError_InvalidValue(InvalidValue(key, f"`{raw}` is not a whole number")))
    if not lo <= value <= hi:
        raise Err(PluginError_InvalidValue(InvalidValue(key, f"{value} is outside {lo}..{hi}")))
    return value


def parse_spec(spec: str) -> Tuple[str, Scheme, str, int, Optional[Credentials], ProxyMeta]:
    """`URL[;region=CC][;tags=a,b][;tier=N]` -> (id, scheme, host, port,
    credentials, meta). The id is `scheme://host:port`: it names the proxy
    without its credentials, so a new password keeps its health."""
    url, *suffix = spec.strip().split(";")
    parts = urlsplit(url.strip())
    scheme = SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise BadValue(f"scheme of `{parts.scheme}://...` is not one of {', '.join(SCHEMES)}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.path not in ("", "/") or parts.query:
        raise BadValue("not scheme://[user:password@]host:port")
    host = parts.hostname
    creds = None
    if parts.username is not None:
        creds = Credentials(unquote(parts.username), unquote(parts.password or ""))
    meta = ProxyMeta(None, [], 0)
    for item in suffix:
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise BadValue(f"metadata `{item.strip()}` is not key=value")
        if key == "region":
            meta.region = value.strip().upper()
        elif key == "tags":
            meta.tags = [t.strip() for t in value.split(",") if t.strip()]
        elif key == "tier":
            if not value.strip().isdigit() or int(value) > 255:
                raise BadValue(f"tier `{value}` is not a whole number in 0..255")
            meta.tier = int(value)
        else:
            raise BadValue(f"`{key}` is not a metadata key (region, tags, tier)")
    shown_host = f"[{host}]" if ":" in host else host
    return f"{scheme.name.lower()}://{shown_host}:{port}", scheme, host, port, creds, meta


class ProxyEntry:
    def __init__(self, spec: str, weight: int):
        self.id, self.scheme, self.host, self.port, self.credentials, self.meta = parse_spec(spec)
        self.weight = weight
        self.successes = 0
        self.failures = 0
        self.consecutive = 0
        self.cooling_until = 0
        self.last_used_ms: Optional[int] = None
        self.blocked_until: Dict[str, int] = {}  # site domain -> ms
        self.by_kind: Dict[str, int] = {}

    def effective_weight(self) -> float:
        return self.weight * (0.5 ** self.consecutive)

    def as_proxy(self, timeout_ms: int) -> Proxy:
        return Proxy(self.id, self.scheme, self.host, self.port, self.credentials, timeout_ms, self.meta)

    def fits(self, want: Wanted) -> bool:
        """Inside `want`: in a region listed (a proxy of `US-CA` is in
        `US`), in none avoided, every tag, the tier range."""
        region = self.meta.region
        in_any = lambda regions: region is not None and any(
            region == r or region.startswith(r + "-") for r in regions)
        if want.regions and not in_any(want.regions):
            return False
        if in_any(want.avoid_regions):
            return False
        if any(t not in self.meta.tags for t in want.tags):
            return False
        if self.meta.tier < want.min_tier:
            return False
        return want.max_tier is None or self.meta.tier <= want.max_tier


def add_proxies(state: "State", options: Options) -> None:
    """Adds the `proxy` and `weight` entries of `options`, keeping the
    health of known ones (raises Err(PluginError_InvalidValue))."""
    for key, value in options:
        try:
            if key == "proxy":
                entry = ProxyEntry(value, 1)
                known = state.proxies.setdefault(entry.id, entry)
                known.credentials, known.meta = entry.credentials, entry.meta
            elif key == "weight":
                spec, sep, n = value.strip().rpartition("=")
                if not sep or not n.strip().isdigit() or not 0 <= int(n) <= 1000:
                    raise BadValue(f"`{n}` is not URL=N with N a whole number in 0..1000")
                entry = ProxyEntry(spec, int(n))
                known = state.proxies.setdefault(entry.id, entry)
                known.credentials, known.meta, known.weight = entry.credentials, entry.meta, entry.weight
        except BadValue as e:
            # The reason, never the value: it may hold a password.
            raise Err(PluginError_InvalidValue(InvalidValue(key, str(e))))


class State:
    def __init__(self) -> None:
        self.proxies: Dict[str, ProxyEntry] = {}  # id -> entry, in order
        self.timeout_ms = 30_000
        self.threshold = 3
        self.cooldown_ms = 60_000
        self.block_ms = 600_000
        self.rng = random.Random()


STATE = State()


class Backend(exports.Backend):
    def init(self, options: Options) -> None:
        for key, _ in options:
            if key not in KNOWN_OPTIONS:
                raise Err(PluginError_UnknownOption(key))
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

    def get_proxy(self, request: Request, options: Options) -> Proxy:
        state = STATE
        # A download's own options (`--backend-opt proxy=URL`) reach only the
        # calls, not init: proxies named there join the pool (keeping the
        # health of those already known).
        try:
            add_proxies(state, options)
        except Err as e:
            bad = e.value.value
            raise Err(GetProxyError_BackendUnavailable(f"option `{bad.key}`: {bad.reason}"))
        if not state.proxies:
            raise Err(GetProxyError_NoProxyAvailable(NoProxy(
                "no proxies configured (options `proxy=URL` or `weight=URL=N`)", None)))
        now = now_ms()
        site = request.site.domain
        usable: List[ProxyEntry] = []
        back_at: List[int] = []
        for p in state.proxies.values():
            if p.weight == 0 or not p.fits(request.want):
                continue
            until = max(p.cooling_until, p.blocked_until.get(site, 0))
            if until > now:
                back_at.append(until)
                continue
            usable.append(p)
        # Not the proxies that already failed this URL, unless nothing else is left.
        fresh = [p for p in usable if p.id not in request.avoid] or usable
        if not fresh:
            raise Err(GetProxyError_NoProxyAvailable(NoProxy(
                "no proxy fits this request: every one is outside what it wants "
                "(region, tags, tier) or cooling down or blocked for this site",
                min(back_at) if back_at else None)))
        cheapest = min(p.meta.tier for p in fresh)
        candidates = [p for p in fresh if p.meta.tier == cheapest]
        chosen = state.rng.choices(candidates, weights=[p.effective_weight() for p in candidates])[0]
        chosen.last_used_ms = now
        return chosen.as_proxy(state.timeout_ms)

    def report_success(self, proxy_id: str, request: Request, outcome: Success, options: Options) -> None:
        p = STATE.proxies.get(proxy_id)
        if p is None:  # not ours (any more): ignore
            return
        p.successes += 1
        p.consecutive = 0
        p.cooling_until = 0

    def report_failure(self, proxy_id: str, request: Request, failure: Failure, options: Options) -> None:
        state = STATE
        p = state.proxies.get(proxy_id)
        if p is None:
            return
        p.failures += 1
        name = failure.kind.name.lower().replace("_", "-")
        p.by_kind[name] = p.by_kind.get(name, 0) + 1
        now = now_ms()
        retry_after = failure.detail.retry_after_ms
        if failure.kind in PROXY_FAULTS:
            p.consecutive += 1
            if p.consecutive >= state.threshold:
                p.cooling_until = now + state.cooldown_ms
        elif failure.kind == FailureKind.BLOCKED:
            # The site refused this address: keep away from that site only,
            # as long as it asked (Retry-After) or for block_ms.
            wait = retry_after if retry_after is not None else state.block_ms
            p.blocked_until[request.site.domain] = now + wait
        # geo-restricted: the host asks for an allowed region next time;
        # content, host, unknown: never the proxy's fault.
        if failure.detail.from_proxy and retry_after is not None:
            # The proxy itself asked to back off (a vendor's rate limit).
            p.cooling_until = max(p.cooling_until, now + retry_after)


class Stats(exports.Stats):
    def get_stats(self, options: Options) -> List[ProxyStats]:
        now = now_ms()
        rows = []
        for p in STATE.proxies.values():
            cooling = p.cooling_until > now
            state = ProxyState_CoolingDown(p.cooling_until) if cooling else ProxyState_Active()
            blocked = sorted(s for s, until in p.blocked_until.items() if until > now)
            # `extra` is list<tuple<string, string>>: every value a str
            # (an int here traps get-stats with a TypeError).
            extra = [("weight", str(p.weight)), ("effective-weight", f"{p.effective_weight():g}")]
            if blocked:
                extra.append(("blocked-sites", ",".join(blocked)))
            extra.extend((f"failures-{k}", str(n)) for k, n in sorted(p.by_kind.items()))
            rows.append(ProxyStats(p.as_proxy(STATE.timeout_ms), p.successes, p.failures,
                                   min(p.consecutive, 2**32 - 1), state, p.last_used_ms, extra))
        return rows
