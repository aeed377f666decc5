// A ytdlp-host backend in JavaScript: the least-used proxy.
//
// Contract `ytdlp:proxy@0.2.0`, world `proxy-backend-with-admin`: backend,
// stats, and admin (`ytdlp-host proxies add/remove`).
//
// `get-proxy` hands out, among the proxies that fit the request, the one
// handed out least often (ties: the one used longest ago), so load spreads
// evenly even when attempts take very different times. "Fit": inside
// `request.want` (regions, avoided regions, tags, tier range), of the
// cheapest tier among those, and not in `request.avoid` unless nothing else
// is left. Proxy faults (connect, timeout, auth) count against a proxy;
// `failure_threshold` of them in a row take it out for `cooldown_ms` (0:
// until it is added again with `proxies add`). A `blocked` failure keeps the
// proxy away from that site (`request.site.domain`) for the site's
// `Retry-After` when it sent one, else for `block_ms`. Other kinds never
// count.
//
// Options (from the config at init, and from each call, so that
// `--backend-opt proxy=URL` works too):
//   proxy=SPEC            a proxy (repeatable)
//   timeout_ms=N          socket timeout handed to yt-dlp (default 30000)
//   failure_threshold=N   consecutive proxy faults before a cool-down (3)
//   cooldown_ms=N         length of that cool-down, 0 = until re-added (300000)
//   block_ms=N            how long a site's block keeps a proxy away (600000)
// where SPEC is `scheme://[user:password@]host:port[;region=CC][;tags=a,b][;tier=N]`.

const SCHEMES = ['http', 'https', 'socks4', 'socks4a', 'socks5', 'socks5h'];
const PROXY_FAULTS = new Set(['proxy-connect', 'proxy-timeout', 'proxy-auth']);
const KNOWN_OPTIONS = new Set(['proxy', 'timeout_ms', 'failure_threshold', 'cooldown_ms', 'block_ms']);
const URL_RE = /^([a-z0-9]+):\/\/(?:([^:@/]*)(?::([^@/]*))?@)?(\[[0-9a-f:.]+\]|[^:/@[\]\s]+):(\d{1,5})\/?$/i;

// Numbers are plain JS numbers inside; u64 values cross the boundary as
// BigInt.
const state = {
  proxies: new Map(), // id -> entry, in insertion order
  timeoutMs: 30000,
  threshold: 3,
  cooldownMs: 300000,
  blockMs: 600000,
};

// A refusal: the contract's `plugin-error` variant, thrown.
const invalid = (key, reason) => ({ tag: 'invalid-value', val: { key, reason } });

function last(options, key) {
  let found;
  for (const [k, v] of options) if (k === key) found = v;
  return found;
}

function intOption(options, key, dflt, lo, hi) {
  const raw = last(options, key);
  if (raw === undefined) return dflt;
  if (!/^\d+$/.test(raw.trim())) throw invalid(key, `\`${raw}\` is not a whole number`);
  const n = Number(raw.trim());
  if (n < lo || n > hi) throw invalid(key, `${n} is outside ${lo}..${hi}`);
  return n;
}

// `URL` -> the parts of the contract's `proxy` record. The id is
// `scheme://host:port`: the proxy without its credentials, so a new password
// keeps its health. Throws a reason (never the URL: it may hold a password).
function parseUrl(url) {
  const m = URL_RE.exec(url.trim());
  if (!m) throw 'not scheme://[user:password@]host:port';
  const scheme = m[1].toLowerCase();
  if (!SCHEMES.includes(scheme)) throw `scheme \`${scheme}\` is not one of ${SCHEMES.join(', ')}`;
  const port = Number(m[5]);
  if (port < 1 || port > 65535) throw `port ${port} is outside 1..65535`;
  const host = m[4].startsWith('[') ? m[4].slice(1, -1) : m[4].toLowerCase();
  let credentials;
  if (m[2] !== undefined) {
    try {
      credentials = { username: decodeURIComponent(m[2]), password: decodeURIComponent(m[3] ?? '') };
    } catch {
      throw 'the credentials are not valid percent-encoding';
    }
  }
  return { id: `${scheme}://${m[4].toLowerCase()}:${port}`, scheme, host, port, credentials };
}

// `URL[;region=CC][;tags=a,b][;tier=N]` -> parts and metadata.
function parseSpec(spec) {
  const [url, ...suffix] = spec.split(';');
  const parts = parseUrl(url);
  const meta = { region: undefined, tags: [], tier: 0 };
  for (const item of suffix) {
    const [k, ...rest] = item.trim().split('=');
    const v = rest.join('=').trim();
    if (rest.length === 0) throw `metadata \`${item.trim()}\` is not key=value`;
    if (k === 'region') meta.region = v.toUpperCase();
    else if (k === 'tags') meta.tags = v.split(',').map((t) => t.trim()).filter(Boolean);
    else if (k === 'tier') {
      if (!/^\d+$/.test(v) || Number(v) > 255) throw `tier \`${v}\` is not a whole number in 0..255`;
      meta.tier = Number(v);
    } else throw `\`${k}\` is not a metadata key (region, tags, tier)`;
  }
  return { ...parts, meta };
}

function newEntry(p) {
  return {
    ...p,
    uses: 0,
    successes: 0,
    failures: 0,
    consecutive: 0,
    disabledUntil: null, // ms; Infinity: until re-added
    lastUsedMs: null,
    blockedUntil: new Map(), // site domain -> ms
  };
}

// Adds parsed proxies; returns how many were new. A known one keeps its
// health (new credentials and metadata apply) and is enabled again.
function addParsed(parsed) {
  let added = 0;
  for (const p of parsed) {
    const known = state.proxies.get(p.id);
    if (known) {
      Object.assign(known, { credentials: p.credentials, meta: p.meta, disabledUntil: null, consecutive: 0 });
    } else {
      state.proxies.set(p.id, newEntry(p));
      added++;
    }
  }
  return added;
}

// The `proxy` options, parsed; throws a plugin-error naming the key.
function proxiesIn(options) {
  return options
    .filter(([k]) => k === 'proxy')
    .map(([, v]) => {
      try {
        return parseSpec(v);
      } catch (reason) {
        throw invalid('proxy', String(reason));
      }
    });
}

function inAny(region, regions) {
  return region !== undefined && regions.some((r) => region === r || region.startsWith(`${r}-`));
}

function fits(p, want) {
  const { region, tags, tier } = p.meta;
  if (want.regions.length > 0 && !inAny(region, want.regions)) return false;
  if (inAny(region, want.avoidRegions)) return false;
  if (!want.tags.every((t) => tags.includes(t))) return false;
  if (tier < want.minTier) return false;
  return want.maxTier === undefined || want.maxTier === null || tier <= want.maxTier;
}

function asProxy(p) {
  const { id, scheme, host, port, credentials, meta } = p;
  return { id, scheme, host, port, credentials, timeoutMs: state.timeoutMs, meta };
}

export const backend = {
  init(options) {
    for (const [k] of options) if (!KNOWN_OPTIONS.has(k)) throw { tag: 'unknown-option', val: k };
    state.proxies = new Map();
    state.timeoutMs = intOption(options, 'timeout_ms', 30000, 1, 600000);
    state.threshold = intOption(options, 'failure_threshold', 3, 1, 1000000);
    state.cooldownMs = intOption(options, 'cooldown_ms', 300000, 0, 86400000);
    state.blockMs = intOption(options, 'block_ms', 600000, 0, 86400000);
    addParsed(proxiesIn(options));
  },

  getProxy(request, options) {
    // A download's own options (`--backend-opt proxy=URL`) reach only the
    // calls, not init: proxies named there join the pool.
    let fromCall;
    try {
      fromCall = proxiesIn(options).filter((p) => !state.proxies.has(p.id));
    } catch (e) {
      throw { tag: 'backend-unavailable', val: `option \`${e.val.key}\`: ${e.val.reason}` };
    }
    addParsed(fromCall);
    if (state.proxies.size === 0) {
      throw {
        tag: 'no-proxy-available',
        val: { message: 'no proxies configured (option `proxy=URL`, or `ytdlp-host proxies add URL`)' },
      };
    }
    const now = Date.now();
    const site = request.site.domain;
    const usable = [];
    let backAt = null;
    for (const p of state.proxies.values()) {
      if (!fits(p, request.want)) continue;
      const until = Math.max(p.disabledUntil ?? 0, p.blockedUntil.get(site) ?? 0);
      if (until > now) {
        if (Number.isFinite(until) && (backAt === null || until < backAt)) backAt = until;
        continue;
      }
      usable.push(p);
    }
    // Not the proxies that already failed this URL, unless nothing else is left.
    const fresh = usable.filter((p) => !request.avoid.includes(p.id));
    const pool = fresh.length > 0 ? fresh : usable;
    if (pool.length === 0) {
      throw {
        tag: 'no-proxy-available',
        val: {
          message:
            'no proxy fits this request: every one is outside what it wants (region, tags, tier), ' +
            'cooling down, disabled or blocked for this site',
          retryAtMs: backAt === null ? undefined : BigInt(backAt),
        },
      };
    }
    const cheapest = Math.min(...pool.map((p) => p.meta.tier));
    let best = null;
    for (const p of pool) {
      if (p.meta.tier !== cheapest) continue;
      if (
        best === null ||
        p.uses < best.uses ||
        (p.uses === best.uses && (p.lastUsedMs ?? -1) < (best.lastUsedMs ?? -1))
      ) {
        best = p;
      }
    }
    best.uses++;
    best.lastUsedMs = now;
    return asProxy(best);
  },

  reportSuccess(proxyId, _request, _outcome, _options) {
    const p = state.proxies.get(proxyId);
    if (!p) return; // not ours (any more): ignore
    p.successes++;
    p.consecutive = 0;
    // It works after all (e.g. an attempt that was under way): back in use.
    if (p.disabledUntil !== Infinity) p.disabledUntil = null;
  },

  reportFailure(proxyId, request, failure, _options) {
    const p = state.proxies.get(proxyId);
    if (!p) return;
    p.failures++;
    if (PROXY_FAULTS.has(failure.kind)) {
      p.consecutive++;
      if (p.consecutive >= state.threshold) {
        p.disabledUntil = state.cooldownMs === 0 ? Infinity : Date.now() + state.cooldownMs;
      }
    } else if (failure.kind === 'blocked') {
      // The site refused this address: away from that site only, as long as
      // it asked (Retry-After, a BigInt) or for block_ms.
      const retryAfter = failure.detail.retryAfterMs;
      const wait = retryAfter === undefined || retryAfter === null ? state.blockMs : Number(retryAfter);
      p.blockedUntil.set(request.site.domain, Date.now() + wait);
    }
    // geo-restricted: the host asks for an allowed region next time;
    // content, host, unknown: never the proxy's fault.
  },
};

export const stats = {
  getStats(_options) {
    const now = Date.now();
    return [...state.proxies.values()].map((p) => {
      let st = { tag: 'active' };
      if (p.disabledUntil === Infinity) st = { tag: 'disabled' };
      else if (p.disabledUntil !== null && p.disabledUntil > now) {
        st = { tag: 'cooling-down', val: BigInt(p.disabledUntil) };
      }
      const blocked = [...p.blockedUntil].filter(([, t]) => t > now).map(([s]) => s);
      // `extra` is list<tuple<string, string>>: every value a string.
      const extra = [['uses', String(p.uses)]];
      if (blocked.length > 0) extra.push(['blocked-sites', blocked.sort().join(',')]);
      return {
        proxy: asProxy(p),
        successes: BigInt(p.successes),
        failures: BigInt(p.failures),
        consecutiveFailures: Math.min(p.consecutive, 0xffffffff),
        state: st,
        lastUsedMs: p.lastUsedMs === null ? undefined : BigInt(p.lastUsedMs),
        extra,
      };
    });
  },
};

export const admin = {
  // `proxies add URL...`: specs of the contract's `proxy-spec` record.
  addProxies(specs, _options) {
    const parsed = specs.map((s) => {
      let p;
      try {
        p = parseUrl(s.url);
      } catch (reason) {
        throw invalid('url', String(reason));
      }
      return { ...p, meta: { region: s.region ?? undefined, tags: s.tags, tier: s.tier } };
    });
    return addParsed(parsed);
  },

  // `proxies remove ID-or-URL...`
  removeProxies(ids, _options) {
    let known = 0;
    for (const given of ids) {
      let id = given.trim();
      try {
        id = parseUrl(id).id; // a URL: its id
      } catch {
        // an id
      }
      if (state.proxies.delete(id)) known++;
    }
    return known;
  },
};
