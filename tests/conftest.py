"""Hypothesis profiles shared by the whole suite.

``thorough`` is the property campaign of issue #12: at least 10,000 cases per property
(each campaign property checks one scheme operation), no deadline. Select it with
``--hypothesis-profile=thorough`` or ``HENN_HYPOTHESIS=thorough``; include the slow
cases (the 128-bit CKKS set) with ``-m "slow or not slow"``. Without it the default
profile is untouched and the campaign runs its few examples per property
(``tests/he_core/properties/campaign.py``).
"""
import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "thorough", max_examples=10_000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])

if os.environ.get("HENN_HYPOTHESIS"):
    settings.load_profile(os.environ["HENN_HYPOTHESIS"])
