// A ytdlp-host backend in JavaScript: the least-used proxy.
//
// `get-proxy` hands out the usable proxy that was handed out least often
// (ties: the one used longest ago), so load spreads evenly even when
// attempts take very different times. Proxy faults (connect, timeout, auth)
// count against a proxy; `failure_threshold` of them in a row take it out
// for `cooldown_ms` (0: until it is added again with `proxies add`). A
// `blocked` failure keeps the proxy away from that site (`host.site`) for
// `block_ms`. Content, host and unknown failures never count.
//
// Exports all three contract interfaces (world `proxy-backend-full`):
// backend, stats, and admin (`ytdlp-host proxies add/remove`).
//
// Options (from the config at init, and from each call, so that
// `--backend-opt proxy=URL` works too):
//   proxy=URL             a proxy (repeatable)
//   timeout_ms=N          socket timeout handed to yt-dlp (default 30000)
//   failure_threshold=N   consecutive proxy faults before a cool-down (3)
//   cooldown_ms=N         length of that cool-down, 0 = until re-added (300000)
//   block_ms=N            how long a site's block keeps a proxy away (600000)

const SCHEMES = ['http', 'https', 'socks4', 'socks4a', 'socks5', 'socks5h'];
const PROXY_FAULTS = new Set(['proxy-connect', 'proxy-timeout', 'proxy-auth']);

// Numbers are plain JS numbers inside; u64 values cross the boundary as
// BigInt.
const state = {
  proxies: new Map(), // url -> entry, in insertion order
  timeoutMs: 30000,
  threshold: 3,
  cooldownMs: 300000,
  blockMs: 600000,
};

function last(options, key) {
  let found;
  for (const [k, v] of options) if (k === key) found = v;
  return found;
}

function intOption(options, key, dflt, lo, hi) {
  const raw = last(options, key);
  if (raw === undefined) return dflt;
  if (!/^\d+$/.test(raw.trim())) throw `option \`${key}\`: \`${raw}\` is not a whole number`;
  const n = Number(raw.trim());
  if (n < lo || n > hi) throw `option \`${key}\`: ${n} is outside ${lo}..${hi}`;
  return n;
}

function checkUrl(url) {
  const m = /^([a-z0-9]+):\/\/[^/\s]+$/i.exec(url);
  if (!m || !SCHEMES.includes(m[1].toLowerCase())) {
    throw `\`${url}\` is not a proxy URL (scheme://host:port, scheme one of ${SCHEMES.join(', ')})`;
  }
  return url;
}

function newEntry(url) {
  return {
    url,
    uses: 0,
    successes: 0,
    failures: 0,
    consecutive: 0,
    disabledUntil: null, // ms; Infinity: until re-added
    lastUsedMs: null,
    blockedUntil: new Map(), // site -> ms
  };
}

// Adds proxies; returns how many were new. Throws a string on a bad URL.
function addUrls(urls) {
  const checked = urls.map((u) => checkUrl(u.trim()));
  let added = 0;
  for (const url of checked) {
    const known = state.proxies.get(url);
    if (known) {
      // Adding a known proxy again re-enables it.
      known.disabledUntil = null;
      known.consecutive = 0;
    } else {
      state.proxies.set(url, newEntry(url));
      added++;
    }
  }
  return added;
}

function proxiesIn(options) {
  return options.filter(([k]) => k === 'proxy').map(([, v]) => v);
}

function usable(p, site, now) {
  if (p.disabledUntil !== null && p.disabledUntil > now) return false;
  const until = p.blockedUntil.get(site);
  return !(until !== undefined && until > now);
}

export const backend = {
  init(options) {
    state.proxies = new Map();
    state.timeoutMs = intOption(options, 'timeout_ms', 30000, 1, 600000);
    state.threshold = intOption(options, 'failure_threshold', 3, 1, 1000000);
    state.cooldownMs = intOption(options, 'cooldown_ms', 300000, 0, 86400000);
    state.blockMs = intOption(options, 'block_ms', 600000, 0, 86400000);
    addUrls(proxiesIn(options));
  },

  getProxy(options) {
    const fromCall = proxiesIn(options).filter((u) => !state.proxies.has(u.trim()));
    if (fromCall.length > 0) {
      try {
        addUrls(fromCall);
      } catch (e) {
        throw { tag: 'backend-unavailable', val: String(e) };
      }
    }
    if (state.proxies.size === 0) {
      throw {
        tag: 'no-proxy-available',
        val: { message: 'no proxies configured (option `proxy=URL`, or `ytdlp-host proxies add URL`)' },
      };
    }
    const now = Date.now();
    const site = last(options, 'host.site') ?? '';
    let best = null;
    let backAt = null;
    for (const p of state.proxies.values()) {
      if (!usable(p, site, now)) {
        const until = Math.max(p.disabledUntil ?? 0, p.blockedUntil.get(site) ?? 0);
        if (Number.isFinite(until) && (backAt === null || until < backAt)) backAt = until;
        continue;
      }
      if (
        best === null ||
        p.uses < best.uses ||
        (p.uses === best.uses && (p.lastUsedMs ?? -1) < (best.lastUsedMs ?? -1))
      ) {
        best = p;
      }
    }
    if (best === null) {
      throw {
        tag: 'no-proxy-available',
        val: {
          message: 'every proxy is cooling down, disabled or blocked for this site',
          retryAtMs: backAt === null ? undefined : BigInt(backAt),
        },
      };
    }
    best.uses++;
    best.lastUsedMs = now;
    return { url: best.url, timeoutMs: state.timeoutMs };
  },

  reportSuccess(proxyUrl, _options) {
    const p = state.proxies.get(proxyUrl);
    if (!p) return;
    p.successes++;
    p.consecutive = 0;
    // It works after all (e.g. an attempt that was under way): back in use.
    if (p.disabledUntil !== Infinity) p.disabledUntil = null;
  },

  reportFailure(proxyUrl, failure, options) {
    const p = state.proxies.get(proxyUrl);
    if (!p) return;
    p.failures++;
    if (PROXY_FAULTS.has(failure.kind)) {
      p.consecutive++;
      if (p.consecutive >= state.threshold) {
        p.disabledUntil = state.cooldownMs === 0 ? Infinity : Date.now() + state.cooldownMs;
      }
    } else if (failure.kind === 'blocked') {
      const site = last(options, 'host.site');
      if (site) p.blockedUntil.set(site, Date.now() + state.blockMs);
    }
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
      const extra = [['uses', String(p.uses)]];
      if (blocked.length > 0) extra.push(['blocked-sites', blocked.sort().join(',')]);
      return {
        url: p.url,
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
  addProxies(urls, _options) {
    return addUrls(urls);
  },

  removeProxies(urls, _options) {
    let known = 0;
    for (const u of urls) if (state.proxies.delete(u.trim())) known++;
    return known;
  },
};
