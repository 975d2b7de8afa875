"""Production server settings for gunicorn (read automatically from the working directory).

Sync workers, two per core: on these machines they were steadier than threads (docs/performance.md).
The access log leaves out the client address (%(h)s): the server never writes one anywhere.
"""

import multiprocessing
import os

bind = os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * multiprocessing.cpu_count()))
worker_class = "sync"
# A request (a slow or stalled body included) holds a worker at most this long.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))


class RequestTimeout(TimeoutError):
    """Raised in a worker whose request ran past `timeout`."""


def worker_abort(worker):
    """gunicorn interrupts a request that ran past `timeout` (a stalled or trickling body, a stuck
    query) with SystemExit, which it answers with a bare HTML 500. An OSError instead reaches the app
    like any broken read: the API answers its JSON 503 with Retry-After and rolls back, and a client
    still sending headers is just disconnected. The worker exits after this request all the same
    (gunicorn has already cleared worker.alive), and one that does not finish it is killed a timeout
    later, as before."""
    raise RequestTimeout(f"the request took longer than {worker.cfg.timeout}s")


graceful_timeout = 30
keepalive = 5
# Restart workers now and then so that no slow leak can grow without bound.
max_requests = 5000
max_requests_jitter = 500
# Headers are small; anything bigger is an attack, answered 400 before Django sees it.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# Which proxies may set X-Forwarded-Proto (the app itself decides about X-Forwarded-For).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

accesslog = os.environ.get("ACCESS_LOG", "-")
errorlog = "-"
# No %(h)s: no address in the log. Time, request line, status, size, duration in microseconds.
access_log_format = '%(t)s "%(r)s" %(s)s %(b)s %(D)sus'
