"""FediseerConfig validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fediseer_sync.config import FediseerConfig


def test_defaults_are_off_and_cautious() -> None:
    cfg = FediseerConfig()
    assert not cfg.enabled
    assert cfg.base_url == "https://fediseer.com/api/v1"
    assert cfg.max_removal_fraction == 0.3 and cfg.sync_interval_minutes == 60
    assert cfg.deny_censured_by == 0


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="trustd"):
        FediseerConfig(trustd=["a.example"])


def test_trusted_domains_are_normalised() -> None:
    cfg = FediseerConfig(trusted=[" Alpha.Example. ", "alpha.example", "beta.example"])
    assert cfg.trusted == ["alpha.example", "beta.example"]


@pytest.mark.parametrize("bad", ["https://alpha.example", "a,b.example", "localhost", ""])
def test_bad_trusted_domain_is_named(bad: str) -> None:
    with pytest.raises(ValidationError, match="bare domain"):
        FediseerConfig(trusted=[bad])


def test_enabled_needs_trusted_domains() -> None:
    with pytest.raises(ValidationError, match="at least one domain"):
        FediseerConfig(enabled=True)


def test_min_endorsements_cannot_exceed_trusted_count() -> None:
    with pytest.raises(ValidationError, match="min_endorsements=3"):
        FediseerConfig(enabled=True, trusted=["a.example", "b.example"], min_endorsements=3)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_removal_fraction", 1.5),
        ("sync_interval_minutes", 1),
        ("min_endorsements", 0),
        ("deny_censured_by", -1),
        ("client_agent", "fedibot"),
    ],
)
def test_out_of_range_values_are_refused(key: str, value: object) -> None:
    with pytest.raises(ValidationError, match=key):
        FediseerConfig(**{key: value})


def test_apikey_is_secret() -> None:
    cfg = FediseerConfig(apikey="s3cret-key")
    assert "s3cret-key" not in repr(cfg) and "s3cret-key" not in str(cfg.model_dump())
    assert cfg.apikey.get_secret_value() == "s3cret-key"
