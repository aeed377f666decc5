# ytdlp-host's warm yt-dlp worker (embedded in the host binary; see
# crates/ytdlp/src/worker/). Kept thin: the host validates the options and
# classifies failures; this script only drives yt-dlp's embedding API.
#
# Protocol, JSON lines. The host writes one request per job on stdin:
#   {"job": N, "argv": [yt-dlp CLI options...], "url": "..."}
# and the worker answers on its private copy of stdout with
#   {"event": "ready", "version": ..., "python": ..., "pid": ...}   (once, at start)
#   {"event": "progress", "job": N, "status": ..., "downloaded_bytes": ..., ...}
#   {"event": "done", "job": N, "ok": bool, "retcode": int, "file": ...,
#    "error": "ERROR: ...", "chain": [{"types": [...], "msg": ..., ...}, ...],
#    "retry_error": "[download] Got error: ..."}
# A chain item may carry "status", "code", "errno", "reason", "countries"
# (GeoRestrictedError), "headers" (a few of an HTTP answer's, see HEADERS) and
# "url_scheme" (of the URL that answered). Fields are only ever added, each
# optional on the host's side, so PROTOCOL stays 1.
# or, if yt-dlp cannot be imported, {"event": "fatal", "error": ...} and exit.
# Anything yt-dlp or its children print goes to stderr, never to the protocol.
import json
import os
import signal
import sys
import threading
import time

PROTO = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
os.dup2(2, 1)
sys.stdout = sys.stderr
PROGRESS_EVERY = 0.1  # seconds between progress events (status changes always)
PROTOCOL = 1  # the host checks it in `ready`
# The headers of an HTTP error answer the host reads: when to come back
# (Retry-After against the answer's own Date), and who answered (a proxy's
# own page or the site's, relayed).
HEADERS = ("Retry-After", "Date", "Server", "Via", "WWW-Authenticate", "Proxy-Authenticate", "X-Squid-Error")


def send(obj):
    PROTO.write(json.dumps(obj, default=str) + "\n")
    PROTO.flush()


def kill_group(*_):
    # This worker leads its own process group: end it whole, so nothing
    # yt-dlp started (ffmpeg) outlives the job or the host.
    os.killpg(0, signal.SIGKILL)


def watch_parent():
    # The host died (the kernel also sends SIGTERM then): do not outlive it
    # mid-download.
    parent = os.getppid()
    while True:
        time.sleep(1)
        if os.getppid() != parent:
            kill_group()


def qualname(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def chain(exc):
    """The exception and what it wraps, outermost first."""
    out, seen = [], set()
    while exc is not None and id(exc) not in seen and len(out) < 12:
        seen.add(id(exc))
        item = {
            "types": [qualname(c) for c in type(exc).__mro__ if c not in (object, BaseException, Exception)],
            "msg": str(exc)[:500],
        }
        for key in ("status", "code", "errno"):
            val = getattr(exc, key, None)
            if isinstance(val, int) and not isinstance(val, bool):
                item[key] = val
        reason = getattr(exc, "reason", None)
        if isinstance(reason, str):
            item["reason"] = reason[:200]
        answer(exc, item)
        countries = getattr(exc, "countries", None)  # GeoRestrictedError
        if isinstance(countries, (list, tuple)):
            item["countries"] = [str(c).upper()[:8] for c in countries[:300]]
        out.append(item)
        nxt = None
        exc_info = getattr(exc, "exc_info", None)  # DownloadError
        if isinstance(exc_info, tuple) and len(exc_info) > 1 and isinstance(exc_info[1], BaseException):
            nxt = exc_info[1]
        if nxt is None and isinstance(getattr(exc, "cause", None), BaseException):
            nxt = exc.cause  # ExtractorError, RequestError
        if nxt is None:
            nxt = exc.__cause__ or exc.__context__
        exc = nxt
    return out


def answer(exc, item):
    """What the HTTP answer behind `exc` tells: yt-dlp's HTTPError keeps it
    in `response`, urllib's HTTPError is one itself."""
    resp = getattr(exc, "response", None)
    headers = getattr(resp, "headers", None)
    if headers is None:
        headers = getattr(exc, "headers", None)
    if "status" not in item:
        status = getattr(resp, "status", None)
        if isinstance(status, int) and not isinstance(status, bool):
            item["status"] = status
    if hasattr(headers, "get"):
        try:
            found = {k: headers.get(k) for k in HEADERS}
        except Exception:  # noqa: BLE001 - a foreign object: no headers
            found = {}
        found = {k: str(v)[:200] for k, v in found.items() if v is not None}
        if found:
            item["headers"] = found
    url = getattr(resp, "url", None)
    if isinstance(url, str) and ":" in url:
        # Only the scheme: the URL itself may carry the site's tokens.
        item["url_scheme"] = url.split(":", 1)[0].lower()[:10]


class Logger:
    """yt-dlp's messages: the last `ERROR:` is the failure, with the exception
    being handled when it was reported (yt-dlp reports from except blocks)."""

    def __init__(self):
        self.error_msg = None
        self.error_exc = None
        self.retry_error = None

    def debug(self, msg):
        # yt-dlp's screen messages come here too. The last retry line is the
        # only trace of the HTTP error behind "The downloaded file is empty"
        # (fragment errors are retried and skipped, never raised).
        if isinstance(msg, str) and "Got error:" in msg:
            self.retry_error = msg.strip()[:300]

    def info(self, msg):
        pass

    def warning(self, msg):
        print(msg, file=sys.stderr)  # the host logs a worker's stderr at debug level

    def error(self, msg):
        if isinstance(msg, str) and msg.lstrip().startswith("ERROR:"):
            self.error_msg = msg
            self.error_exc = sys.exc_info()[1]


def prewarm():
    """Compiles every extractor's URL pattern now, before `ready`: yt-dlp
    does it lazily, which would cost the first job about half a second."""
    try:
        from yt_dlp.extractor import gen_extractor_classes

        for ie in gen_extractor_classes():
            ie.suitable("http://127.0.0.1/")
    except Exception:  # noqa: BLE001 - only an optimisation
        pass


def run_job(yt_dlp, req):
    job = req.get("job")
    logger = Logger()
    files = []
    state = {"last": 0.0, "status": None}

    def progress(d):
        now = time.monotonic()
        status = d.get("status")
        if status == state["status"] and now - state["last"] < PROGRESS_EVERY:
            return
        state["last"], state["status"] = now, status
        send({
            "event": "progress", "job": job, "status": status,
            "downloaded_bytes": d.get("downloaded_bytes"), "total_bytes": d.get("total_bytes"),
            "total_bytes_estimate": d.get("total_bytes_estimate"), "speed": d.get("speed"),
            "eta": d.get("eta"), "filename": d.get("filename"), "tmpfilename": d.get("tmpfilename"),
        })

    try:
        # yt-dlp's own CLI parser turns the (host-validated) options into
        # YoutubeDL params, with the CLI's defaults: the same behaviour as
        # the process runner.
        params = yt_dlp.parse_options(list(req["argv"])).ydl_opts
    except SystemExit as e:
        return {"event": "done", "job": job, "ok": False, "retcode": 2,
                "error": f"yt-dlp: error: invalid options (exit {e.code})", "chain": [], "options": True}
    params.update({
        "logger": logger,
        "quiet": True,
        "noprogress": True,
        "progress_hooks": [progress],
        "post_hooks": [files.append],
    })
    retcode = 1
    try:
        # A fresh YoutubeDL per job: no cookies, caches or state carried over.
        with yt_dlp.YoutubeDL(params) as ydl:
            retcode = ydl.download([req["url"]])
    except BaseException as e:  # noqa: BLE001 - every failure is an outcome
        if isinstance(e, KeyboardInterrupt):
            raise
        if logger.error_exc is None or not isinstance(e, yt_dlp.utils.DownloadError):
            logger.error_exc = e
            if logger.error_msg is None:
                logger.error_msg = f"ERROR: {type(e).__name__}: {e}"
        retcode = retcode or 1
    if retcode == 0:
        return {"event": "done", "job": job, "ok": True, "retcode": 0, "file": files[-1] if files else None}
    done = {"event": "done", "job": job, "ok": False, "retcode": retcode, "error": logger.error_msg,
            "chain": chain(logger.error_exc) if logger.error_exc is not None else []}
    if logger.retry_error is not None:
        done["retry_error"] = logger.retry_error
    return done


def main():
    for name in ("NO_PROXY", "no_proxy"):
        os.environ.pop(name, None)
    try:
        import yt_dlp
        import yt_dlp.version
    except BaseException as e:  # noqa: BLE001
        send({"event": "fatal", "error": f"cannot import yt_dlp with {sys.executable}: {type(e).__name__}: {e}"})
        return 1
    signal.signal(signal.SIGTERM, kill_group)
    threading.Thread(target=watch_parent, daemon=True).start()
    prewarm()
    send({"event": "ready", "version": yt_dlp.version.__version__, "python": sys.version.split()[0],
          "pid": os.getpid(), "protocol": PROTOCOL})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
        except ValueError as e:
            # A line that is not a request is answered, not fatal.
            send({"event": "done", "job": None, "ok": False, "retcode": 2,
                  "error": f"ERROR: bad request line: {e}", "chain": [], "options": True})
            continue
        send(run_job(yt_dlp, req))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--sys-path":
        sys.path.insert(0, sys.argv[2])
    sys.exit(main())
