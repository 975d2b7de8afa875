"""Settings for the benchmarks: the project's own settings (from the environment, as in production),
plus a no-op endpoint on the same server to measure the ceiling of the stack.

Throttling is off: every benchmark request comes from one address, so the throttle's counter would
be one cache row updated by every request of every worker, a contention point no real fleet (one
address per instance) creates. docs/performance.md gives what the throttle costs per request.
"""

from impact.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {**REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "reports": None},  # noqa: F405
}
