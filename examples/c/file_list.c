// A ytdlp-host backend in C: the proxy list is a file the host grants.
//
// The plugin reads `/data/proxies.txt` (option `file`), one proxy URL per
// line; blank lines and lines starting with `#` are skipped. It hands the
// proxies out round robin. Edit the file and the next get-proxy sees the
// change (the file is re-read when its size or modification time changes);
// proxies that stay keep their health. Proxy faults (connect, timeout, auth)
// count against a proxy; `failure_threshold` of them in a row send it
// cooling down for `cooldown_ms`. Other failure kinds never count.
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
//
// Bindings: `wit-bindgen c ../../wit --world proxy-backend-with-stats`
// (see build.sh). Arguments of exported functions belong to this code (it
// frees them); returned strings must be malloc'd (the bindings free them
// after the host has copied them).

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "proxy_backend_with_stats.h"

typedef proxy_backend_with_stats_string_t str_t;

typedef struct {
  char *url;
  uint64_t successes, failures;
  uint32_t consecutive;
  uint64_t cooling_until; // ms since the epoch; 0: not cooling
  uint64_t last_used;     // ms; 0: never
  int seen;               // still in the file (reload bookkeeping)
} proxy_t;

static struct {
  char file[512];
  uint32_t timeout_ms, threshold;
  uint64_t cooldown_ms;
  proxy_t *proxies;
  size_t len, cap, next;
  long long mtime_ns, size; // of the file when last read
  size_t skipped;           // invalid lines at the last read
  uint64_t reloads;
} st = {"/data/proxies.txt", 30000, 3, 60000, NULL, 0, 0, 0, -1, -1, 0, 0};

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void set_str(str_t *out, const char *s) { proxy_backend_with_stats_string_dup(out, s); }

static char *cstr(const str_t *s) {
  char *c = malloc(s->len + 1);
  memcpy(c, s->ptr, s->len);
  c[s->len] = 0;
  return c;
}

static int key_is(const str_t *k, const char *key) {
  return k->len == strlen(key) && memcmp(k->ptr, key, k->len) == 0;
}

// The last value of `key`, as a new C string, or NULL.
static char *last_opt(const ytdlp_proxy_types_options_t *o, const char *key) {
  for (size_t i = o->len; i > 0; i--) {
    if (key_is(&o->ptr[i - 1].f0, key)) return cstr(&o->ptr[i - 1].f1);
  }
  return NULL;
}

// Reads a whole-number option into *out; on error writes a message to err.
static int num_opt(const ytdlp_proxy_types_options_t *o, const char *key, uint64_t lo,
                   uint64_t hi, uint64_t *out, char *err, size_t errlen) {
  char *v = last_opt(o, key);
  if (!v) return 1;
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  int ok = *v && *end == 0 && errno == 0 && n >= lo && n <= hi;
  if (ok) *out = n;
  else snprintf(err, errlen, "option `%s`: `%s` is not a whole number in %llu..%llu", key, v,
                (unsigned long long)lo, (unsigned long long)hi);
  free(v);
  return ok;
}

static int valid_url(const char *u) {
  static const char *schemes[] = {"http://", "https://", "socks4://", "socks4a://",
                                  "socks5://", "socks5h://"};
  for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++) {
    size_t n = strlen(schemes[i]);
    if (strncmp(u, schemes[i], n) == 0 && u[n] && !strpbrk(u + n, " \t/")) return 1;
  }
  return 0;
}

static proxy_t *find(const char *url, size_t len) {
  for (size_t i = 0; i < st.len; i++) {
    if (strlen(st.proxies[i].url) == len && memcmp(st.proxies[i].url, url, len) == 0)
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
    if (!valid_url(s)) {
      skipped++;
      if (strict) {
        snprintf(err, errlen, "%s line %zu: `%.100s` is not a proxy URL (scheme://host:port)",
                 st.file, lineno, s);
        ok = 0;
        break;
      }
      continue;
    }
    proxy_t *p = find(s, strlen(s));
    if (!p) {
      if (st.len == st.cap) {
        st.cap = st.cap ? st.cap * 2 : 16;
        st.proxies = realloc(st.proxies, st.cap * sizeof *st.proxies);
      }
      p = &st.proxies[st.len++];
      memset(p, 0, sizeof *p);
      p->url = strdup(s);
    }
    p->seen = 1;
  }
  fclose(f);
  if (!ok) return 0;
  // Drop the proxies that left the file, keeping the order of the others.
  size_t w = 0;
  for (size_t i = 0; i < st.len; i++) {
    if (st.proxies[i].seen) st.proxies[w++] = st.proxies[i];
    else free(st.proxies[i].url);
  }
  st.len = w;
  if (st.next >= st.len) st.next = 0;
  st.mtime_ns = mtime;
  st.size = sb.st_size;
  st.skipped = skipped;
  st.reloads++;
  return 1;
}

bool exports_ytdlp_proxy_backend_init(ytdlp_proxy_types_options_t *options, str_t *err) {
  char msg[768] = "";
  uint64_t timeout = 30000, threshold = 3, cooldown = 60000;
  int ok = num_opt(options, "timeout_ms", 1, 600000, &timeout, msg, sizeof msg) &&
           num_opt(options, "failure_threshold", 1, 1000000, &threshold, msg, sizeof msg) &&
           num_opt(options, "cooldown_ms", 0, 86400000, &cooldown, msg, sizeof msg);
  char *file = last_opt(options, "file");
  if (file) {
    snprintf(st.file, sizeof st.file, "%s", file);
    free(file);
  }
  ytdlp_proxy_types_options_free(options);
  if (ok) {
    st.timeout_ms = (uint32_t)timeout;
    st.threshold = (uint32_t)threshold;
    st.cooldown_ms = cooldown;
    st.mtime_ns = st.size = -1;
    ok = load_file(1, msg, sizeof msg);
  }
  if (!ok) set_str(err, msg);
  return ok;
}

bool exports_ytdlp_proxy_backend_get_proxy(ytdlp_proxy_types_options_t *options,
                                           ytdlp_proxy_types_proxy_t *ret,
                                           ytdlp_proxy_types_get_proxy_error_t *err) {
  ytdlp_proxy_types_options_free(options);
  char msg[768];
  if (!load_file(0, msg, sizeof msg)) {
    err->tag = YTDLP_PROXY_TYPES_GET_PROXY_ERROR_BACKEND_UNAVAILABLE;
    set_str(&err->val.backend_unavailable, msg);
    return false;
  }
  uint64_t now = now_ms(), back_at = 0;
  for (size_t n = 0; n < st.len; n++) {
    proxy_t *p = &st.proxies[(st.next + n) % st.len];
    if (p->cooling_until > now) {
      if (!back_at || p->cooling_until < back_at) back_at = p->cooling_until;
      continue;
    }
    st.next = (st.next + n + 1) % st.len;
    p->last_used = now;
    set_str(&ret->url, p->url);
    ret->timeout_ms = st.timeout_ms;
    return true;
  }
  err->tag = YTDLP_PROXY_TYPES_GET_PROXY_ERROR_NO_PROXY_AVAILABLE;
  snprintf(msg, sizeof msg, st.len ? "every proxy in %s is cooling down" : "%s lists no proxies",
           st.file);
  set_str(&err->val.no_proxy_available.message, msg);
  err->val.no_proxy_available.retry_at_ms.is_some = back_at != 0;
  err->val.no_proxy_available.retry_at_ms.val = back_at;
  return false;
}

void exports_ytdlp_proxy_backend_report_success(str_t *proxy_url,
                                                ytdlp_proxy_types_options_t *options) {
  proxy_t *p = find((const char *)proxy_url->ptr, proxy_url->len);
  if (p) {
    p->successes++;
    p->consecutive = 0;
    p->cooling_until = 0;
  }
  proxy_backend_with_stats_string_free(proxy_url);
  ytdlp_proxy_types_options_free(options);
}

void exports_ytdlp_proxy_backend_report_failure(str_t *proxy_url, ytdlp_proxy_types_failure_t *failure,
                                                ytdlp_proxy_types_options_t *options) {
  proxy_t *p = find((const char *)proxy_url->ptr, proxy_url->len);
  if (p) {
    p->failures++;
    switch (failure->kind) {
    case YTDLP_PROXY_TYPES_FAILURE_KIND_PROXY_CONNECT:
    case YTDLP_PROXY_TYPES_FAILURE_KIND_PROXY_TIMEOUT:
    case YTDLP_PROXY_TYPES_FAILURE_KIND_PROXY_AUTH:
      if (++p->consecutive >= st.threshold) p->cooling_until = now_ms() + st.cooldown_ms;
      break;
    default: // blocked, content, host, unknown: not the proxy's own fault
      break;
    }
  }
  proxy_backend_with_stats_string_free(proxy_url);
  ytdlp_proxy_types_failure_free(failure);
  ytdlp_proxy_types_options_free(options);
}

static void extra(proxy_backend_with_stats_tuple2_string_string_t *kv, const char *k,
                  unsigned long long v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%llu", v);
  set_str(&kv->f0, k);
  set_str(&kv->f1, buf);
}

bool exports_ytdlp_proxy_stats_get_stats(ytdlp_proxy_types_options_t *options,
                                         exports_ytdlp_proxy_stats_list_proxy_stats_t *ret,
                                         str_t *err) {
  (void)err;
  ytdlp_proxy_types_options_free(options);
  uint64_t now = now_ms();
  ret->len = st.len;
  ret->ptr = st.len ? calloc(st.len, sizeof *ret->ptr) : NULL;
  for (size_t i = 0; i < st.len; i++) {
    proxy_t *p = &st.proxies[i];
    ytdlp_proxy_types_proxy_stats_t *r = &ret->ptr[i];
    set_str(&r->url, p->url);
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
    r->extra.len = 2;
    r->extra.ptr = calloc(2, sizeof *r->extra.ptr);
    extra(&r->extra.ptr[0], "file-reloads", st.reloads);
    extra(&r->extra.ptr[1], "skipped-lines", st.skipped);
  }
  return true;
}
