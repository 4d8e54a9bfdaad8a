"""Pydantic shapes of the AI Horde image endpoints we use.

Built from the published OpenAPI description `codegen/ai_horde/swagger.json` in
Haidra-Org/horde-sdk (commit 534826bf221e15ac3c6bf4d8848c1af62b9c0cf7; swagger 2.0, base path
/api): definitions GenerationInputStable, ModelGenerationInputStable (+ModelPayloadRootStable),
RequestAsync, RequestSingleWarning, RequestStatusCheck, RequestStatusStable, GenerationStable
(+Generation), GenerationMetadataStable, RequestError, RequestValidationError. Only the fields
we send or read are declared; responses ignore unknown fields so a newer server does not break
us, and enums are kept as plain strings for the same reason.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Limits from the definitions above.
MAX_N = 20  # ModelGenerationInputStable.n maximum
MAX_STEPS = 500  # ModelGenerationInputStable.steps maximum
SIZE_MULTIPLE = 64  # ModelPayloadRootStable.width/height multipleOf
MIN_SIZE, MAX_SIZE = 64, 3072
MAX_CFG = 100.0
SAMPLERS = frozenset(
    {
        "k_euler",
        "lcm",
        "k_euler_a",
        "k_dpmpp_2s_a",
        "DDIM",
        "dpmsolver",
        "k_lms",
        "k_dpm_fast",
        "k_dpmpp_sde",
        "k_dpm_2",
        "k_dpm_2_a",
        "k_dpm_adaptive",
        "k_heun",
        "k_dpmpp_2m",
    }
)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ModelGenerationInput(_Request):
    """ModelGenerationInputStable (the `params` object)."""

    sampler_name: str | None = None
    cfg_scale: float = Field(7.5, ge=0, le=MAX_CFG)
    seed: str | None = None
    seed_variation: int | None = Field(None, ge=1, le=1000)
    height: int = Field(512, ge=MIN_SIZE, le=MAX_SIZE, multiple_of=SIZE_MULTIPLE)
    width: int = Field(512, ge=MIN_SIZE, le=MAX_SIZE, multiple_of=SIZE_MULTIPLE)
    karras: bool = False
    steps: int = Field(30, ge=1, le=MAX_STEPS)
    n: int = Field(1, ge=1, le=MAX_N)


class GenerationInput(_Request):
    """GenerationInputStable: the body of POST /v2/generate/async."""

    prompt: str = Field(..., min_length=1)
    params: ModelGenerationInput
    nsfw: bool = False
    trusted_workers: bool = False
    slow_workers: bool = True
    censor_nsfw: bool = False
    models: list[str] = Field(default_factory=list)
    r2: bool = True
    shared: bool = False
    replacement_filter: bool = True
    webhook: str | None = None

    def body(self) -> dict[str, object]:
        return self.model_dump(exclude_none=True)


class RequestSingleWarning(_Response):
    code: str = ""
    message: str = ""


class RequestAsync(_Response):
    """202 answer of POST /v2/generate/async."""

    id: str
    kudos: float = 0.0
    message: str = ""
    warnings: list[RequestSingleWarning] = Field(default_factory=list)


class RequestStatusCheck(_Response):
    """GET /v2/generate/check/{id}."""

    finished: int = 0
    processing: int = 0
    restarted: int = 0
    waiting: int = 0
    done: bool = False
    faulted: bool = False
    wait_time: int = 0
    queue_position: int = 0
    kudos: float = 0.0
    is_possible: bool = True


class GenerationMetadata(_Response):
    """GenerationMetadataStable: e.g. {type: censorship, value: nsfw|csam}."""

    type: str
    value: str
    ref: str | None = None


class Generation(_Response):
    """GenerationStable: one image; `img` is a URL (r2) or base64 WebP."""

    img: str = ""
    seed: str = ""
    id: str = ""
    model: str = ""
    worker_id: str = ""
    worker_name: str = ""
    state: str = "ok"
    censored: bool = False
    gen_metadata: list[GenerationMetadata] = Field(default_factory=list)


class RequestStatus(RequestStatusCheck):
    """RequestStatusStable: GET and DELETE /v2/generate/status/{id}."""

    generations: list[Generation] = Field(default_factory=list)
    shared: bool = False


class RequestError(_Response):
    """RequestError / RequestValidationError: every non-2xx answer."""

    rc: str = ""
    message: str = ""
    errors: dict[str, str] | None = None
