"""End to end over real HTTP: HordeWorker + HordeFlow + HordeClient against the fake Horde."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from PIL import Image

from generator.horde import codes
from generator.horde.client import HordeClient
from generator.horde.store import DONE, FAILED, RETURNED_LOCAL, SUBMITTED, SUBMITTING
from tests.fakes.horde_server import Behaviour
from tests.horde.conftest import Rig, req, wait_for


async def test_images_come_back_as_classified_pngs(rig: Rig) -> None:
    rig.fake.will(Behaviour(done_after_checks=3))
    worker = await rig.run(req(1, n=2))
    result = rig.source.results[1]
    assert [img.seed for img in result.images] == [100, 101]
    assert all(Path(img.path).exists() for img in result.images)
    assert Image.open(result.images[0].path).format == "PNG"
    assert rig.classifier.seen == [(64, 64), (64, 64)]  # our safety check ran on each
    assert rig.store.records[1].state == DONE and worker.outcomes[1] == "done"
    assert len(rig.fake.submissions) == 1 and rig.fake.requests  # one POST
    [rid] = rig.fake.requests
    assert len(rig.fake.check_times[rid]) == 3 and len(rig.fake.status_times[rid]) == 1
    body = rig.fake.submissions[0]
    assert body["models"] == ["stable_diffusion"] and body["params"]["n"] == 2
    assert body["params"]["seed"] == "100" and body["censor_nsfw"] is True
    # r2: images were downloaded from the object-storage URL without the API key
    assert len(rig.fake.download_headers) == 2
    assert all("apikey" not in {k.lower() for k in h} for h in rig.fake.download_headers)


async def test_inline_base64_images(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = rig_factory(r2=False)
    await rig.run(req(1))
    assert len(rig.source.results[1].images) == 1 and rig.fake.download_headers == []


async def test_partial_censorship_posts_the_rest_with_a_notice(rig: Rig) -> None:
    rig.fake.will(Behaviour(censor=[None, "nsfw", None]))
    await rig.run(req(1, n=3))
    result = rig.source.results[1]
    assert [img.seed for img in result.images] == [100, 102]
    assert [img.index for img in result.images] == [0, 1]
    assert rig.notices == [
        (1, codes.HORDE_PARTIAL_CENSORED, codes.CODES[codes.HORDE_PARTIAL_CENSORED].reply)
    ]
    assert rig.store.records[1].code == codes.HORDE_PARTIAL_CENSORED
    assert len(rig.classifier.seen) == 2  # the placeholder never reaches the pipeline


async def test_all_censored_fails_with_a_clear_code_and_stays_off_local(rig: Rig) -> None:
    rig.fake.will(Behaviour(censor=["nsfw", "nsfw"]))
    await rig.run(req(1, n=2))
    err = rig.source.errors[1]
    assert err.code == codes.HORDE_CENSORED and not err.retryable
    assert "safety filter" in err.message
    assert rig.store.records[1].state == FAILED and 1 not in rig.source.results


async def test_csam_mark_on_any_image_posts_nothing(rig: Rig) -> None:
    rig.fake.will(Behaviour(censor=[None, "csam"]))
    await rig.run(req(1, n=2))
    assert rig.source.errors[1].code == codes.HORDE_CENSORED_CSAM
    assert rig.classifier.seen == []


async def test_faulted_goes_back_to_the_local_queue(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = rig_factory()
    rig.source.max_attempts = 3
    rig.fake.will(Behaviour(faulted=True))
    await rig.run(req(1))
    assert rig.store.records[1].state == RETURNED_LOCAL
    assert rig.store.records[1].code == codes.HORDE_FAULTED
    assert rig.source.pending == 1  # queued again, for the local worker
    # the Horde worker does not take it again
    assert await rig.source.claim_for_horde("horde", 5, 60) == []
    assert [r.job_id for r in await rig.source.claim("local-1", 8, 60)] == [1]


async def test_faulted_with_horde_only_fails_clearly(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = rig_factory(backend="horde")
    rig.fake.will(Behaviour(faulted=True))
    await rig.run(req(1))
    assert rig.source.errors[1].code == codes.HORDE_FAULTED
    assert rig.store.records[1].state == FAILED


async def test_expired_request_404_returns_to_local(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = rig_factory()
    rig.source.max_attempts = 3
    rig.fake.will(Behaviour(done_after_checks=None, expire_after_checks=2))
    worker = await rig.run(req(1))
    assert worker.outcomes[1] == codes.HORDE_EXPIRED
    assert rig.store.records[1].state == RETURNED_LOCAL and rig.source.pending == 1


async def test_done_without_generations_is_not_success(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = rig_factory(backend="horde")
    rig.fake.will(Behaviour(no_generations=True))
    await rig.run(req(1))
    assert rig.source.errors[1].code == codes.HORDE_NO_IMAGES


async def test_impossible_request_is_cancelled_after_the_grace(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = rig_factory(impossible_grace_s=30)
    rig.fake.served_models = {"other_model"}
    worker = await rig.run(req(1))
    assert worker.outcomes[1] == codes.HORDE_IMPOSSIBLE
    [fr] = rig.fake.requests.values()
    assert fr.cancelled  # DELETE /v2/generate/status/{id} was sent
    checks = rig.fake.check_times[fr.id]
    assert checks[-1] - checks[0] >= 30


async def test_rejected_prompt_maps_rc_and_pauses_submissions(rig: Rig) -> None:
    rig.fake.reject_words["forbidden"] = "CorruptPrompt"
    r = req(1)
    r = type(r)(job_id=1, prompt="a forbidden thing", seeds=[1])
    worker = rig.worker()
    rig.source.put(r)
    await worker.run()
    assert rig.source.errors[1].code == codes.HORDE_REJECTED
    assert worker.flow.paused  # CorruptPrompt times out the IP: stop submitting a while


async def test_checks_at_most_once_per_second_and_status_within_10_per_minute(
    rig_factory,  # type: ignore[no-untyped-def]
) -> None:
    rig = rig_factory()
    rig.fake.will(*[Behaviour(done_after_checks=6, wait_time=0) for _ in range(3)])
    await rig.run(req(1), req(2), req(3))
    assert len(rig.source.results) == 3
    for rid, times in rig.fake.check_times.items():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(times) == 6 and min(gaps) >= 1.0, (rid, gaps)
    assert rig.fake.rate_limited == 0


async def test_status_429_is_waited_out(rig: Rig) -> None:
    rig.fake.fail("status", 429, "", times=1)
    start = rig.clock.now()
    await rig.run(req(1))
    assert len(rig.source.results[1].images) == 1
    assert rig.clock.now() - start >= 1.0  # Retry-After: 1 honoured


async def test_restart_resumes_polling_without_a_second_submission(rig: Rig) -> None:
    rig.fake.will(Behaviour(done_after_checks=None))  # never done until we say so
    rig.source.put(req(1, n=2))
    first = rig.worker(exit_when_idle=False)
    task = asyncio.create_task(first.run())
    await wait_for(
        lambda: rig.store.records.get(1) is not None and rig.store.records[1].state == SUBMITTED
    )
    [fr] = rig.fake.requests.values()
    await wait_for(lambda: fr.checks >= 2)
    task.cancel()  # the process dies mid-poll
    await asyncio.gather(task, return_exceptions=True)
    await rig.clients[0].close()
    assert rig.store.records[1].state == SUBMITTED and 1 not in rig.source.results

    fr.behaviour.done_after_checks = fr.checks + 1
    second = rig.worker()  # new client and worker, same store and queue
    await second.run()
    assert len(rig.fake.submissions) == 1
    assert len(rig.source.results[1].images) == 2
    assert rig.store.records[1].state == DONE


async def test_crash_before_the_id_was_recorded_resubmits_once(rig: Rig) -> None:
    await rig.store.record_submitting(req(1))  # crashed during the POST that never arrived
    rig.source.put(req(1))
    await rig.run()
    assert len(rig.fake.submissions) == 1 and len(rig.source.results[1].images) == 1
    assert rig.store.writes[:3] == [("submitting", 1), ("submitting", 1), ("submitted", 1)]


async def test_too_many_unconfirmed_submissions_stop(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = rig_factory(max_submissions=2, backend="horde")
    for _ in range(2):
        await rig.store.record_submitting(req(1))
    rig.source.put(req(1))
    await rig.run()
    assert rig.fake.submissions == []
    assert rig.source.errors[1].code == codes.HORDE_UNCONFIRMED


async def test_ambiguous_submit_failure_is_counted_not_blindly_retried(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = rig_factory(max_submissions=2, backend="horde")
    rig.fake.fail("async", 500, "", times=5)
    await rig.run(req(1))
    # two POSTs reached the server (each may have created a request), then we stopped
    assert rig.store.writes.count(("submitting", 1)) == 2
    assert rig.source.errors[1].code == codes.HORDE_UNCONFIRMED
    assert rig.store.records[1].state == FAILED


async def test_record_order_submitting_before_request_id_after(rig: Rig) -> None:
    await rig.run(req(1))
    assert rig.store.writes == [("submitting", 1), ("submitted", 1), (DONE, 1)]
    assert rig.store.records[1].horde_id in rig.fake.requests
    assert SUBMITTING not in {r.state for r in rig.store.records.values()}


async def test_ineligible_size_stays_local(rig: Rig) -> None:
    r = req(1, width=72, height=64)
    rig.source.put(r)
    assert await rig.source.claim_for_horde("horde", 5, 60) == []


async def _resume_on_another_machine(rig: Rig, submitted_at: float, wall: float) -> float:
    """A request submitted elsewhere (`submitted_at`, as recorded) is resumed by a flow whose
    wall clock reads `wall`; it never finishes. Returns the flow-clock seconds it polled."""
    from generator.horde.flow import HordeFlow
    from generator.horde.payload import to_payload
    from generator.horde.store import HordeJobRecord

    rig.fake.will(Behaviour(done_after_checks=None))
    client = HordeClient(rig.config.horde, clock=rig.clock, version="9.9")
    request = req(1)
    answer = await client.submit(to_payload(rig.config, request))
    rig.store.records[1] = HordeJobRecord(
        1, request, SUBMITTED, answer.id, 1, submitted_at=submitted_at
    )
    flow = HordeFlow(client, rig.store, rig.config, wall=lambda: wall)
    started = rig.clock.now()
    outcome = await flow.run(request)
    assert getattr(outcome, "code", None) == codes.HORDE_EXPIRED
    assert rig.fake.requests[answer.id].cancelled
    return rig.clock.now() - started


async def test_a_request_resumed_on_another_machine_keeps_its_age(rig_factory) -> None:  # type: ignore[no-untyped-def]
    """The timeout counts from the wall-clock submission time, not from the resume."""
    rig = rig_factory(timeout_s=600)
    polled = await _resume_on_another_machine(
        rig, submitted_at=1_800_000_000.0, wall=1_800_000_570.0
    )
    assert 30 <= polled < 60  # 30 s were left of 600


async def test_a_request_recorded_on_a_monotonic_clock_gets_its_full_time(rig_factory) -> None:  # type: ignore[no-untyped-def]
    """Records of older versions hold a monotonic reading: its age is unknown, so the full
    timeout counts from the resume (not "expired 56 years ago")."""
    rig = rig_factory(timeout_s=600)
    polled = await _resume_on_another_machine(rig, submitted_at=5_000.0, wall=1_800_000_000.0)
    assert 600 <= polled < 640
