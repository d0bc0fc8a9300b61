"""Suite-wide settings: Hypothesis never fails a test for being slow on a busy 2-core machine
(tests assert behaviour, never speed); examples stay deterministic per test unless a test
says otherwise."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "swimnet",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
settings.load_profile("swimnet")
