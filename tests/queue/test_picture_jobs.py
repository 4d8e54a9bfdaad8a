"""QR and image-to-image jobs through the durable queue: the batch key keeps their mode and
strength apart from plain jobs, a claim rebuilds the QR options and writes the stored input
picture to a file for the generator (removed with the result), the Horde never takes them,
and purge removes the picture with its job."""

from __future__ import annotations

from pathlib import Path

from fedibot.queue.jobs import JobQueue, NewJob, PictureInput, batch_key, key_mode
from fedibot.queue.work_source import QueueWorkSource, request_from_row
from generator.types import GenerationError, GenerationRequest

PICTURE = PictureInput(b"\x89PNG fake bytes", "image/png", 64, 64, "alt", "http://x/1.png")


def job(remote_id: str, mode: str = "txt2img", **options) -> NewJob:
    strength = options.get("strength") if mode == "img2img" else None
    return NewJob(
        platform="mastodon",
        bot_account="main",
        remote_id=remote_id,
        requester=f"user{remote_id}@example.social",
        requester_domain="example.social",
        prompt=f"a lighthouse {remote_id}",
        model="tiny",
        width=64,
        height=64,
        steps=8,
        guidance=5.0,
        params={"options": {**options, "picture": mode == "img2img"}},
        mode=mode,
        strength=strength,
        picture=PICTURE if mode == "img2img" else None,
    )


def test_the_batch_key_string_names_mode_and_strength() -> None:
    plain = batch_key("tiny", 64, 64, 4, 5.0)
    assert plain == "tiny|64x64|4|5"  # unchanged for plain jobs (queued rows stay valid)
    assert batch_key("tiny", 64, 64, 4, 5.0, "qr") == "tiny|64x64|4|5|qr"
    assert batch_key("tiny", 64, 64, 4, 5.0, "img2img", 0.5) == "tiny|64x64|4|5|img2img@0.5"
    assert [key_mode(k) for k in (plain, plain + "|qr", plain + "|img2img@0.5", None)] == [
        "txt2img",
        "qr",
        "img2img",
        "txt2img",
    ]


async def test_qr_and_img2img_jobs_are_never_batched_with_plain_ones(db) -> None:
    queue = JobQueue(db)
    await queue.enqueue(job("1"))
    await queue.enqueue(job("2", "qr", qr="https://example.org/x"))
    await queue.enqueue(job("3", "img2img", strength=0.5))
    await queue.enqueue(job("4", "img2img", strength=0.7))
    await queue.enqueue(job("5"))
    batches = []
    while claimed := await queue.claim("w", 8, 30.0):
        batches.append(sorted(r.remote_id for r in claimed))
    assert sorted(batches) == [["1", "5"], ["2"], ["3"], ["4"]]


async def test_a_claim_rebuilds_qr_options_and_the_input_picture(db, tmp_path: Path) -> None:
    queue = JobQueue(db)
    await queue.enqueue(
        job("q", "qr", qr="https://example.org/x", qr_position="top-left", qr_module=4)
    )
    source = QueueWorkSource(queue)
    [qr] = await source.claim("w", 4, 30.0)
    assert (qr.mode, qr.qr, qr.qr_position, qr.qr_module) == (
        "qr",
        "https://example.org/x",
        "top-left",
        4,
    )
    assert qr.init_image is None and qr.strength is None
    created = await queue.enqueue(job("p", "img2img", strength=0.5))
    [pic] = await source.claim("w", 4, 30.0)
    assert pic.mode == "img2img" and pic.strength == 0.5 and pic.qr is None
    assert pic.init_image is not None and Path(pic.init_image).read_bytes() == PICTURE.data
    assert pic.batch_key[5:] == ("img2img", 0.5)
    stored = await queue.picture(created.job_id)
    assert stored.alt_text == "alt" and stored.size == len(PICTURE.data)
    await source.fail("w", pic.job_id, GenerationError("generation_failed", "x", True))
    assert not Path(pic.init_image).exists()  # the temporary file goes with the attempt


def test_a_plain_row_without_options_stays_plain() -> None:
    class Row:
        id, prompt, negative_prompt, seed, n, model = 1, "p", "", 7, 2, "tiny"
        width, height, steps, guidance = 64, 64, 4, 5.0
        batch_key = "tiny|64x64|4|5"

    request = request_from_row(Row(), {"qr": "ignored for a plain key", "strength": 0.3})
    assert isinstance(request, GenerationRequest)
    assert request.mode == "txt2img" and request.seeds == [7, 8] and request.strength is None


async def test_the_horde_never_takes_qr_or_picture_jobs(db, monkeypatch) -> None:
    # every plain job counts as eligible here (the Horde's own rules are tested elsewhere)
    monkeypatch.setattr("fedibot.queue.work_source.ineligible", lambda config, request: None)
    from fedibot.config.loader import parse_config

    config = parse_config(
        {"data_dir": "/tmp/unused", "generator": {"safety": {"classifier": "none"}}}
    ).generator
    queue = JobQueue(db)
    await queue.enqueue(job("2", "qr", qr="https://example.org/x"))
    await queue.enqueue(job("3", "img2img", strength=0.5))
    await queue.enqueue(job("1"))
    source = QueueWorkSource(queue, kind="horde", config=config)
    taken = await source.claim_for_horde("h", 4, 30.0)
    assert [r.job_id for r in taken] == [3]  # only the plain job (ids 1, 2 are QR/picture)


async def test_purge_removes_the_input_picture(db) -> None:
    clock = [1000.0]
    from fedibot.queue.jobs import QueueSettings

    queue = JobQueue(db, QueueSettings(clock=lambda: clock[0]))
    created = await queue.enqueue(job("3", "img2img", strength=0.5))
    await queue.cancel(created.job_id)
    clock[0] += 10_000
    assert (await queue.purge(60))[0] == 1
    assert await queue.picture(created.job_id) is None
