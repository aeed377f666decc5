// A ytdlp-host backend in C: the proxy list is a file the host grants.
//
// Contract `ytdlp:proxy@0.2.0`, world `proxy-backend-with-stats`.
//
// The plugin reads `/data/proxies.txt` (option `file`), one proxy per line:
// `scheme://[user:password@]host:port[;region=CC][;tags=a,b][;tier=N]`;
// blank lines and lines starting with `#` are skipped. It hands the proxies
// out round robin among those that fit the request: inside `request.want`
// (regions, avoided regions, tags, tier range), of the cheapest tier among
// those, and not in `request.avoid` unless nothing else is left. Edit the
// file and the next get-proxy sees the change (the file is re-read when its
// size or modification time changes); proxies that stay keep their health.
// A proxy's id is `scheme://host:port`, so a new password keeps it too.
// Proxy faults (connect, timeout, auth) count against a proxy;
// `failure_threshold` of them in a row send it cooling down for
// `cooldown_ms`. A `blocked` failure keeps the proxy away from that site
// (`request.site.domain`) for the site's Retry-After, else `block_ms`. Other
// failure kinds never count.
//
// Grant the directory in the host's config, read-only:
//   [plugins.file-list.grants]
//   dirs = [{ host = "/etc/ytdlp-host/proxies", guest = "/data" }]
//
// Options:
//   file=PATH             the list, as the plugin sees it (/data/proxies.txt)
//   timeout_ms=N          socket timeout handed to yt-dlp (30000)
//   failure_threshold=N   consecutive proxy faults before a cool-down (3)
//   cooldown_ms=N         length of that cool-down (60000)
//   block_ms=N            how long a site's block keeps a proxy away (600000)
//
// Bindings: `wit-bindgen c ../../wit/proxy-0.2.wit --world
// proxy-backend-with-stats` (see build.sh). Arguments of exported functions
// belong to this code (it frees them); everything returned must be malloc'd
// (the bindings free it after the host has copied it).

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "proxy_backend_with_stats.h"

typedef proxy_backend_with_stats_string_t str_t;
typedef proxy_backend_with_stats_list_string_t strs_t;
typedef ytdlp_proxy_types_options_t options_t;

#define MAX_BLOCKS 8 // sites one proxy is kept away from at once

typedef struct {
  char *id;                  // scheme://host:port
  ytdlp_proxy_types_scheme_t scheme;
  char *host;                // IPv6 without brackets
  uint16_t port;
  char *user, *pass;         // NULL: no credentials
  char *region;              // NULL: unknown
  char **tags;
  size_t ntags;
  uint8_t tier;
  uint64_t successes, failures;
  uint32_t consecutive;
  uint64_t cooling_until;    // ms since the epoch; 0: not cooling
  uint64_t last_used;        // ms; 0: never
  struct { char *domain; uint64_t until; } blocks[MAX_BLOCKS];
  int seen;                  // still in the file (reload bookkeeping)
} proxy_t;

static struct {
  char file[512];
  uint32_t timeout_ms, threshold;
  uint64_t cooldown_ms, block_ms;
  proxy_t *proxies;
  size_t len, cap, next;
  long long mtime_ns, size; // of the file when last read
  size_t skipped;           // invalid lines at the last read
  uint64_t reloads;
} st = {"/data/proxies.txt", 30000, 3, 60000, 600000, NULL, 0, 0, 0, -1, -1, 0, 0};

static const char *SCHEMES[] = {"http", "https", "socks4", "socks4a", "socks5", "socks5h"};

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void set_str(str_t *out, const char *s) { proxy_backend_with_stats_string_dup(out, s); }

static char *dupn(const uint8_t *p, size_t n) {
  char *c = malloc(n + 1);
  memcpy(c, p, n);
  c[n] = 0;
  return c;
}

static int str_is(const str_t *s, const char *c) {
  return s->len == strlen(c) && memcmp(s->ptr, c, s->len) == 0;
}

static int strs_has(const strs_t *l, const char *c) {
  for (size_t i = 0; i < l->len; i++)
    if (str_is(&l->ptr[i], c)) return 1;
  return 0;
}

// The last value of `key`, as a new C string, or NULL.
static char *last_opt(const options_t *o, const char *key) {
  for (size_t i = o->len; i > 0; i--) {
    if (str_is(&o->ptr[i - 1].f0, key)) return dupn(o->ptr[i - 1].f1.ptr, o->ptr[i - 1].f1.len);
  }
  return NULL;
}

static void invalid_value(ytdlp_proxy_types_plugin_error_t *err, const char *key, const char *reason) {
  err->tag = YTDLP_PROXY_TYPES_PLUGIN_ERROR_INVALID_VALUE;
  set_str(&err->val.invalid_value.key, key);
  set_str(&err->val.invalid_value.reason, reason);
}

// Reads a whole-number option into *out; on error fills err.
static int num_opt(const options_t *o, const char *key, uint64_t lo, uint64_t hi, uint64_t *out,
                   ytdlp_proxy_types_plugin_error_t *err) {
  char *v = last_opt(o, key);
  if (!v) return 1;
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  int ok = *v >= '0' && *v <= '9' && *end == 0 && errno == 0 && n >= lo && n <= hi;
  if (ok) *out = n;
  else {
    char reason[128];
    snprintf(reason, sizeof reason, "not a whole number in %llu..%llu", (unsigned long long)lo,
             (unsigned long long)hi);
    invalid_value(err, key, reason);
  }
  free(v);
  return ok;
}

// Percent-decodes s[0..n) into a new string; NULL if malformed.
static char *pct_decode(const char *s, size_t n) {
  static const char *hex = "0123456789abcdef0123456789ABCDEF";
  char *out = malloc(n + 1), *w = out;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '%') { *w++ = s[i]; continue; }
    const char *hi = i + 2 < n ? memchr(hex, s[i + 1], 32) : NULL;
    const char *lo = i + 2 < n ? memchr(hex, s[i + 2], 32) : NULL;
    if (!hi || !lo) { free(out); return NULL; }
    *w++ = (char)(((hi - hex) % 16) * 16 + (lo - hex) % 16);
    i += 2;
  }
  *w = 0;
  return out;
}

static void free_proxy(proxy_t *p) {
  free(p->id); free(p->host); free(p->user); free(p->pass); free(p->region);
  for (size_t i = 0; i < p->ntags; i++) free(p->tags[i]);
  free(p->tags);
  for (size_t i = 0; i < MAX_BLOCKS; i++) free(p->blocks[i].domain);
  memset(p, 0, sizeof *p);
}

// Parses `URL[;region=CC][;tags=a,b][;tier=N]` (NUL-terminated, trimmed)
// into *p. Returns NULL, or why not (never echoing the line: it may hold a
// password).
static const char *parse_line(char *s, proxy_t *p) {
  memset(p, 0, sizeof *p);
  char *meta = strchr(s, ';');
  if (meta) *meta++ = 0;
  for (char *e = s + strlen(s); e > s && (e[-1] == ' ' || e[-1] == '\t');) *--e = 0;
  char *sep = strstr(s, "://");
  if (!sep) return "not scheme://[user:password@]host:port";
  size_t sl = (size_t)(sep - s);
  int scheme = -1;
  for (int i = 0; i < 6; i++)
    if (strlen(SCHEMES[i]) == sl && strncasecmp(s, SCHEMES[i], sl) == 0) scheme = i;
  if (scheme < 0) return "the scheme is not one of http, https, socks4, socks4a, socks5, socks5h";
  char *auth = sep + 3, *at = strrchr(auth, '@'), *hp = at ? at + 1 : auth;
  size_t hl = strlen(hp);
  if (hl && hp[hl - 1] == '/') hp[--hl] = 0; // a trailing slash
  if (strpbrk(hp, "/?# \t")) return "not scheme://[user:password@]host:port (a path, query or space)";
  char *colon;
  if (*hp == '[') {
    char *close = strchr(hp, ']');
    if (!close || close[1] != ':') return "an IPv6 address is [addr]:port";
    colon = close + 1;
  } else {
    colon = strrchr(hp, ':');
    if (!colon || colon == hp) return "no host:port";
  }
  char *end;
  unsigned long port = strtoul(colon + 1, &end, 10);
  if (!colon[1] || *end || port < 1 || port > 65535) return "the port is not a number in 1..65535";
  p->scheme = (ytdlp_proxy_types_scheme_t)scheme;
  p->port = (uint16_t)port;
  if (*hp == '[') p->host = dupn((const uint8_t *)hp + 1, (size_t)(colon - hp - 2));
  else p->host = dupn((const uint8_t *)hp, (size_t)(colon - hp));
  for (char *c = p->host; *c; c++) if (*c >= 'A' && *c <= 'Z') *c += 'a' - 'A';
  size_t idlen = strlen(SCHEMES[scheme]) + strlen(p->host) + 16;
  p->id = malloc(idlen);
  snprintf(p->id, idlen, *hp == '[' ? "%s://[%s]:%u" : "%s://%s:%u", SCHEMES[scheme], p->host,
           (unsigned)port);
  if (at) {
    char *pc = memchr(auth, ':', (size_t)(at - auth));
    size_t ul = pc ? (size_t)(pc - auth) : (size_t)(at - auth);
    p->user = pct_decode(auth, ul);
    p->pass = pc ? pct_decode(pc + 1, (size_t)(at - pc - 1)) : strdup("");
    if (!p->user || !p->pass) return "the credentials are not valid percent-encoding";
  }
  for (char *item = meta; item && *item;) {
    char *next = strchr(item, ';');
    if (next) *next++ = 0;
    while (*item == ' ' || *item == '\t') item++;
    char *eq = strchr(item, '=');
    if (!eq) return "metadata is key=value (region, tags, tier)";
    *eq = 0;
    char *v = eq + 1;
    for (char *e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t');) *--e = 0;
    if (strcmp(item, "region") == 0) {
      free(p->region);
      p->region = strdup(v);
      for (char *c = p->region; *c; c++) if (*c >= 'a' && *c <= 'z') *c -= 'a' - 'A';
    } else if (strcmp(item, "tags") == 0) {
      for (char *t = strtok(v, ","); t; t = strtok(NULL, ",")) {
        p->tags = realloc(p->tags, (p->ntags + 1) * sizeof *p->tags);
        p->tags[p->ntags++] = strdup(t);
      }
    } else if (strcmp(item, "tier") == 0) {
      unsigned long t = strtoul(v, &end, 10);
      if (!*v || *end || t > 255) return "tier is a whole number in 0..255";
      p->tier = (uint8_t)t;
    } else {
      return "a metadata key is not one of region, tags, tier";
    }
    item = next;
  }
  return NULL;
}

static proxy_t *find(const uint8_t *id, size_t len) {
  for (size_t i = 0; i < st.len; i++) {
    if (strlen(st.proxies[i].id) == len && memcmp(st.proxies[i].id, id, len) == 0)
      return &st.proxies[i];
  }
  return NULL;
}

// (Re)reads the file. Returns 0 and writes err when it cannot be read; with
// `strict`, an invalid line is an error too (at init), else it is skipped.
static int load_file(int strict, char *err, size_t errlen) {
  struct stat sb;
  if (stat(st.file, &sb) != 0) {
    snprintf(err, errlen,
             "cannot read %s: %s (grant its directory in the config: "
             "[plugins.NAME.grants] dirs = [{ host = \"...\", guest = \"/data\" }])",
             st.file, strerror(errno));
    return 0;
  }
  long long mtime = (long long)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
  if (mtime == st.mtime_ns && (long long)sb.st_size == st.size) return 1; // unchanged
  FILE *f = fopen(st.file, "r");
  if (!f) {
    snprintf(err, errlen, "cannot read %s: %s", st.file, strerror(errno));
    return 0;
  }
  for (size_t i = 0; i < st.len; i++) st.proxies[i].seen = 0;
  char line[2048];
  size_t lineno = 0, skipped = 0;
  int ok = 1;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char *s = line, *e;
    while (*s == ' ' || *s == '\t') s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
    if (*s == 0 || *s == '#') continue;
    proxy_t parsed;
    const char *why = parse_line(s, &parsed);
    if (why) {
      free_proxy(&parsed);
      skipped++;
      if (strict) {
        snprintf(err, errlen, "%s line %zu: %s", st.file, lineno, why);
        ok = 0;
        break;
      }
      continue;
    }
    proxy_t *p = find((const uint8_t *)parsed.id, strlen(parsed.id));
    if (p) {
      // Known: new credentials and metadata, the same health.
      free(p->user); free(p->pass); free(p->region);
      for (size_t i = 0; i < p->ntags; i++) free(p->tags[i]);
      free(p->tags);
      p->user = parsed.user; p->pass = parsed.pass; p->region = parsed.region;
      p->tags = parsed.tags; p->ntags = parsed.ntags; p->tier = parsed.tier;
      free(parsed.id); free(parsed.host);
    } else {
      if (st.len == st.cap) {
        st.cap = st.cap ? st.cap * 2 : 16;
        st.proxies = realloc(st.proxies, st.cap * sizeof *st.proxies);
      }
      p = &st.proxies[st.len++];
      *p = parsed;
    }
    p->seen = 1;
  }
  fclose(f);
  if (!ok) return 0;
  // Drop the proxies that left the file, keeping the order of the others.
  size_t w = 0;
  for (size_t i = 0; i < st.len; i++) {
    if (st.proxies[i].seen) st.proxies[w++] = st.proxies[i];
    else free_proxy(&st.proxies[i]);
  }
  st.len = w;
  if (st.next >= st.len) st.next = 0;
  st.mtime_ns = mtime;
  st.size = sb.st_size;
  st.skipped = skipped;
  st.reloads++;
  return 1;
}

bool exports_ytdlp_proxy_backend_init(options_t *options, ytdlp_proxy_types_plugin_error_t *err) {
  static const char *known[] = {"file", "timeout_ms", "failure_threshold", "cooldown_ms", "block_ms"};
  int ok = 1;
  for (size_t i = 0; ok && i < options->len; i++) {
    int found = 0;
    for (size_t k = 0; k < sizeof known / sizeof *known; k++) found |= str_is(&options->ptr[i].f0, known[k]);
    if (!found) {
      err->tag = YTDLP_PROXY_TYPES_PLUGIN_ERROR_UNKNOWN_OPTION;
      proxy_backend_with_stats_string_dup_n(&err->val.unknown_option, (const char *)options->ptr[i].f0.ptr,
                                            options->ptr[i].f0.len);
      ok = 0;
    }
  }
  uint64_t timeout = 30000, threshold = 3, cooldown = 60000, block = 600000;
  ok = ok && num_opt(options, "timeout_ms", 1, 600000, &timeout, err) &&
       num_opt(options, "failure_threshold", 1, 1000000, &threshold, err) &&
       num_opt(options, "cooldown_ms", 0, 86400000, &cooldown, err) &&
       num_opt(options, "block_ms", 0, 86400000, &block, err);
  char *file = last_opt(options, "file");
  if (file) {
    snprintf(st.file, sizeof st.file, "%s", file);
    free(file);
  }
  ytdlp_proxy_types_options_free(options);
  if (!ok) return false;
  st.timeout_ms = (uint32_t)timeout;
  st.threshold = (uint32_t)threshold;
  st.cooldown_ms = cooldown;
  st.block_ms = block;
  st.mtime_ns = st.size = -1;
  char msg[768];
  if (!load_file(1, msg, sizeof msg)) {
    // A bad line is a bad value of `file`; an unreadable file (no grant)
    // is the plugin unable to work.
    if (strstr(msg, " line ")) invalid_value(err, "file", msg);
    else {
      err->tag = YTDLP_PROXY_TYPES_PLUGIN_ERROR_UNAVAILABLE;
      set_str(&err->val.unavailable, msg);
    }
    return false;
  }
  return true;
}

// In `regions` (a proxy of `US-CA` is in `US`)?
static int in_any(const char *region, const strs_t *regions) {
  if (!region) return 0;
  for (size_t i = 0; i < regions->len; i++) {
    const str_t *r = &regions->ptr[i];
    if (strlen(region) >= r->len && memcmp(region, r->ptr, r->len) == 0 &&
        (region[r->len] == 0 || region[r->len] == '-'))
      return 1;
  }
  return 0;
}

static int fits(const proxy_t *p, const ytdlp_proxy_types_wanted_t *w) {
  if (w->regions.len && !in_any(p->region, &w->regions)) return 0;
  if (in_any(p->region, &w->avoid_regions)) return 0;
  for (size_t i = 0; i < w->tags.len; i++) {
    int has = 0;
    for (size_t t = 0; t < p->ntags; t++) has |= str_is(&w->tags.ptr[i], p->tags[t]);
    if (!has) return 0;
  }
  if (p->tier < w->min_tier) return 0;
  return !w->max_tier.is_some || p->tier <= w->max_tier.val;
}

static uint64_t blocked_until(const proxy_t *p, const str_t *domain) {
  for (size_t i = 0; i < MAX_BLOCKS; i++)
    if (p->blocks[i].domain && str_is(domain, p->blocks[i].domain)) return p->blocks[i].until;
  return 0;
}

// The proxy as the contract's record, every part malloc'd.
static void fill_proxy(ytdlp_proxy_types_proxy_t *r, const proxy_t *p) {
  set_str(&r->id, p->id);
  r->scheme = p->scheme;
  set_str(&r->host, p->host);
  r->port = p->port;
  r->credentials.is_some = p->user != NULL;
  if (p->user) {
    set_str(&r->credentials.val.username, p->user);
    set_str(&r->credentials.val.password, p->pass);
  }
  r->timeout_ms = st.timeout_ms;
  r->meta.region.is_some = p->region != NULL;
  if (p->region) set_str(&r->meta.region.val, p->region);
  r->meta.tags.len = p->ntags;
  r->meta.tags.ptr = p->ntags ? calloc(p->ntags, sizeof(str_t)) : NULL;
  for (size_t i = 0; i < p->ntags; i++) set_str(&r->meta.tags.ptr[i], p->tags[i]);
  r->meta.tier = p->tier;
}

bool exports_ytdlp_proxy_backend_get_proxy(ytdlp_proxy_types_request_t *request, options_t *options,
                                           ytdlp_proxy_types_proxy_t *ret,
                                           ytdlp_proxy_types_get_proxy_error_t *err) {
  ytdlp_proxy_types_options_free(options);
  char msg[768];
  if (!load_file(0, msg, sizeof msg)) {
    ytdlp_proxy_types_request_free(request);
    err->tag = YTDLP_PROXY_TYPES_GET_PROXY_ERROR_BACKEND_UNAVAILABLE;
    set_str(&err->val.backend_unavailable, msg);
    return false;
  }
  // usable[i]: 0 no, 1 yes but in `avoid`, 2 yes.
  uint64_t now = now_ms(), back_at = 0;
  unsigned char *usable = calloc(st.len ? st.len : 1, 1);
  int any_fresh = 0;
  for (size_t i = 0; i < st.len; i++) {
    proxy_t *p = &st.proxies[i];
    if (!fits(p, &request->want)) continue;
    uint64_t until = blocked_until(p, &request->site.domain);
    if (p->cooling_until > until) until = p->cooling_until;
    if (until > now) {
      if (!back_at || until < back_at) back_at = until;
      continue;
    }
    usable[i] = strs_has(&request->avoid, p->id) ? 1 : 2;
    any_fresh |= usable[i] == 2;
  }
  // Not the proxies that already failed this URL, unless nothing else is
  // left; then the cheapest tier; then round robin.
  int cheapest = 256;
  for (size_t i = 0; i < st.len; i++)
    if (usable[i] == (any_fresh ? 2 : 1) && st.proxies[i].tier < cheapest) cheapest = st.proxies[i].tier;
  for (size_t n = 0; n < st.len; n++) {
    size_t i = (st.next + n) % st.len;
    if (usable[i] != (any_fresh ? 2 : 1) || st.proxies[i].tier != cheapest) continue;
    st.next = (i + 1) % st.len;
    st.proxies[i].last_used = now;
    fill_proxy(ret, &st.proxies[i]);
    free(usable);
    ytdlp_proxy_types_request_free(request);
    return true;
  }
  free(usable);
  ytdlp_proxy_types_request_free(request);
  err->tag = YTDLP_PROXY_TYPES_GET_PROXY_ERROR_NO_PROXY_AVAILABLE;
  snprintf(msg, sizeof msg,
           st.len ? "no proxy in %s fits this request: outside what it wants (region, tags, tier), "
                    "cooling down or blocked for this site"
                  : "%s lists no proxies",
           st.file);
  set_str(&err->val.no_proxy_available.message, msg);
  err->val.no_proxy_available.retry_at_ms.is_some = back_at != 0;
  err->val.no_proxy_available.retry_at_ms.val = back_at;
  return false;
}

void exports_ytdlp_proxy_backend_report_success(str_t *proxy_id, ytdlp_proxy_types_request_t *request,
                                                ytdlp_proxy_types_success_t *outcome, options_t *options) {
  proxy_t *p = find(proxy_id->ptr, proxy_id->len);
  if (p) { // else not ours (any more): ignore
    p->successes++;
    p->consecutive = 0;
    p->cooling_until = 0;
  }
  proxy_backend_with_stats_string_free(proxy_id);
  ytdlp_proxy_types_request_free(request);
  ytdlp_proxy_types_success_free(outcome);
  ytdlp_proxy_types_options_free(options);
}

// Keeps p away from `domain` until `until` (replacing its entry, an
// expired one, or the one that ends first).
static void block(proxy_t *p, const str_t *domain, uint64_t until) {
  size_t slot = 0;
  for (size_t i = 0; i < MAX_BLOCKS; i++) {
    if (p->blocks[i].domain && str_is(domain, p->blocks[i].domain)) { slot = i; break; }
    if (p->blocks[i].until < p->blocks[slot].until) slot = i;
  }
  free(p->blocks[slot].domain);
  p->blocks[slot].domain = dupn(domain->ptr, domain->len);
  p->blocks[slot].until = until;
}

void exports_ytdlp_proxy_backend_report_failure(str_t *proxy_id, ytdlp_proxy_types_request_t *request,
                                                ytdlp_proxy_types_failure_t *failure, options_t *options) {
  proxy_t *p = find(proxy_id->ptr, proxy_id->len);
  if (p) {
    p->failures++;
    switch (failure->kind) {
    case YTDLP_PROXY_TYPES_FAILURE_KIND_PROXY_CONNECT:
    case YTDLP_PROXY_TYPES_FAILURE_KIND_PROXY_TIMEOUT:
    case YTDLP_PROXY_TYPES_FAILURE_KIND_PROXY_AUTH:
      if (++p->consecutive >= st.threshold) p->cooling_until = now_ms() + st.cooldown_ms;
      break;
    case YTDLP_PROXY_TYPES_FAILURE_KIND_BLOCKED: {
      // The site refused this address: away from that site only, as long
      // as it asked (Retry-After) or for block_ms.
      const proxy_backend_with_stats_option_u64_t *ra = &failure->detail.retry_after_ms;
      block(p, &request->site.domain, now_ms() + (ra->is_some ? ra->val : st.block_ms));
      break;
    }
    default: // geo-restricted, content, host, unknown: not the proxy's own fault
      break;
    }
  }
  proxy_backend_with_stats_string_free(proxy_id);
  ytdlp_proxy_types_request_free(request);
  ytdlp_proxy_types_failure_free(failure);
  ytdlp_proxy_types_options_free(options);
}

static void kv(proxy_backend_with_stats_tuple2_string_string_t *out, const char *k, const char *v) {
  set_str(&out->f0, k);
  set_str(&out->f1, v);
}

bool exports_ytdlp_proxy_stats_get_stats(options_t *options, exports_ytdlp_proxy_stats_list_proxy_stats_t *ret,
                                         ytdlp_proxy_types_plugin_error_t *err) {
  (void)err;
  ytdlp_proxy_types_options_free(options);
  uint64_t now = now_ms();
  ret->len = st.len;
  ret->ptr = st.len ? calloc(st.len, sizeof *ret->ptr) : NULL;
  for (size_t i = 0; i < st.len; i++) {
    proxy_t *p = &st.proxies[i];
    ytdlp_proxy_types_proxy_stats_t *r = &ret->ptr[i];
    fill_proxy(&r->proxy, p);
    r->successes = p->successes;
    r->failures = p->failures;
    r->consecutive_failures = p->consecutive;
    if (p->cooling_until > now) {
      r->state.tag = YTDLP_PROXY_TYPES_PROXY_STATE_COOLING_DOWN;
      r->state.val.cooling_down = p->cooling_until;
    } else {
      r->state.tag = YTDLP_PROXY_TYPES_PROXY_STATE_ACTIVE;
    }
    r->last_used_ms.is_some = p->last_used != 0;
    r->last_used_ms.val = p->last_used;
    // `extra` values are strings: numbers are formatted here.
    char sites[512] = "", buf[32];
    for (size_t b = 0; b < MAX_BLOCKS; b++) {
      if (!p->blocks[b].domain || p->blocks[b].until <= now) continue;
      size_t used = strlen(sites);
      snprintf(sites + used, sizeof sites - used, "%s%s", used ? "," : "", p->blocks[b].domain);
    }
    r->extra.len = sites[0] ? 3 : 2;
    r->extra.ptr = calloc(r->extra.len, sizeof *r->extra.ptr);
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)st.reloads);
    kv(&r->extra.ptr[0], "file-reloads", buf);
    snprintf(buf, sizeof buf, "%zu", st.skipped);
    kv(&r->extra.ptr[1], "skipped-lines", buf);
    if (sites[0]) kv(&r->extra.ptr[2], "blocked-sites", sites);
  }
  return true;
}
