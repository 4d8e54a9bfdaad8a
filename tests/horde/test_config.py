"""`[generator] backend` and `[generator.horde]`: validation names keys, never the key's value."""

from __future__ import annotations

import pytest

from fedibot.config.errors import ConfigError
from fedibot.config.loader import parse_config
from generator.config import GeneratorConfig

SECRET = "very-secret-value-77"


def horde(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"contact": "https://bot.example", "models": {"tiny": "sd"}}
    base.update(kw)
    return base


def test_defaults_are_local_and_anonymous() -> None:
    cfg = GeneratorConfig()
    assert cfg.backend == "local" and cfg.horde.anonymous
    assert cfg.horde.check_interval_s >= 1 and cfg.horde.status_per_minute <= 10


def test_bad_backend_names_key_and_allowed_values() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"generator": {"backend": "cloud"}})
    text = str(info.value)
    assert "generator.backend" in text and "local+horde" in text


def test_horde_needs_a_contact_and_known_models() -> None:
    with pytest.raises(ConfigError, match=r"horde\.contact"):
        parse_config({"generator": {"backend": "horde", "horde": horde(contact="")}})
    with pytest.raises(ConfigError, match="unknown model"):
        parse_config({"generator": {"backend": "local+horde", "horde": horde(models={"x": "y"})}})


def test_key_from_environment_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HORDE_KEY", SECRET)
    cfg = parse_config(
        {"generator": {"backend": "local+horde", "horde": horde(api_key="env:HORDE_KEY")}}
    )
    assert cfg.generator.horde.api_key.get_secret_value() == SECRET
    assert SECRET not in repr(cfg) and SECRET not in str(cfg.generator.horde)
    with pytest.raises(ConfigError) as info:  # another key is wrong: the message hides ours
        parse_config({"generator": {"horde": horde(api_key="env:HORDE_KEY", max_in_flight=0)}})
    assert "max_in_flight" in str(info.value) and SECRET not in str(info.value)


def test_webhook_must_be_https() -> None:
    with pytest.raises(ConfigError, match="https"):
        parse_config({"generator": {"horde": horde(webhook_url="http://x.example/hook")}})


def test_status_limit_cannot_exceed_the_hordes() -> None:
    with pytest.raises(ConfigError, match="status_per_minute"):
        parse_config({"generator": {"horde": horde(status_per_minute=30)}})


def test_qr_and_image_to_image_requests_never_go_to_the_horde() -> None:
    from generator.horde.payload import ineligible
    from generator.types import GenerationRequest

    cfg = GeneratorConfig.model_validate(
        {"backend": "local+horde", "horde": {"contact": "https://bot.example/about"}}
    )
    model = next(iter(cfg.models))
    cfg.horde.models[model] = "stable_diffusion"
    base = {"job_id": 1, "prompt": "a lighthouse", "seeds": [1], "model": model}
    assert ineligible(cfg, GenerationRequest(**base, width=512, height=512)) is None
    assert "QR" in (ineligible(cfg, GenerationRequest(**base, qr="https://x.test")) or "")
    img2img = GenerationRequest(**base, init_image="/tmp/in.png", strength=0.5)
    assert "image-to-image" in (ineligible(cfg, img2img) or "")
