"""Limits: one frozen value; a bad setting is refused with its name and the allowed range."""

from __future__ import annotations

import pytest

from trio_sip import Limits
from trio_sip.errors import ConfigError


def test_defaults_are_consistent() -> None:
    limits = Limits()
    assert limits.max_header_section <= limits.max_message_size
    assert limits.max_body_size <= limits.max_message_size
    assert limits.request_rate is not None and limits.request_burst >= limits.request_rate


@pytest.mark.parametrize(
    ("setting", "value", "allowed"),
    [
        ("max_message_size", 10, "1024..16777216"),
        ("max_headers", True, "16..100000"),
        ("tls_handshake_timeout", 0, "0.01..3600"),
        ("request_rate", -1.0, "[0, 1e7]"),
        ("max_forks", 1.5, "1..10000"),
    ],
)
def test_bad_value_names_setting_and_range(setting: str, value: object, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        Limits(**{setting: value})  # type: ignore[arg-type]
    assert info.value.setting == setting
    assert allowed in str(info.value)


def test_header_section_cannot_exceed_message() -> None:
    with pytest.raises(ConfigError, match="max_header_section"):
        Limits(max_message_size=4096, max_header_section=8192)


def test_rates_can_be_turned_off() -> None:
    limits = Limits(request_rate=None, failed_auth_rate=None)
    assert limits.request_rate is None and limits.failed_auth_rate is None
