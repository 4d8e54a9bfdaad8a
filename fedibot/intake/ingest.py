"""From a received mention to a durable job: dedupe → policy → parse → Job(queued|rejected).

Everything a user can get wrong becomes a recorded refusal with a stable code and a reply
(when config says so) — never an exception that loses the mention.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC
from typing import Any

from federation.types import Mention, Visibility
from federation.visibility import reply_visibility
from fedibot.config.loader import FedibotConfig
from fedibot.intake.grammar import (
    ParsedRequest,
    PromptError,
    PromptRules,
    parse,
    wants_private,
)
from fedibot.intake.mention_codec import mention_to_dict
from fedibot.intake.options import Options, job_columns, resolve_options
from fedibot.intake.pictures import PictureChecker, PictureError, has_picture
from fedibot.moderation.policy import Decision, Policy
from fedibot.ops import metrics
from fedibot.queue.jobs import JobQueue, NewJob, PictureInput
from fedibot.storage.models import JobState, ReplyState

log = logging.getLogger("fedibot.intake.ingest")

BAD_PROMPT_CODES = {
    "bad_option",
    "empty_prompt",
    "prompt_too_long",
    "unknown_model",
    "unknown_style",
}


class Ingest:
    """The sink every adapter calls; idempotent on (platform, account, remote id)."""

    def __init__(
        self,
        queue: JobQueue,
        policy: Policy,
        config: FedibotConfig,
        pictures: PictureChecker | None = None,
    ) -> None:
        self.queue = queue
        self.policy = policy
        self.config = config
        self.pictures = pictures or PictureChecker.from_config(config)
        self.rules = PromptRules.from_config(config.prompt, config.generator.models)

    async def __call__(self, mention: Mention) -> None:
        await self.handle(mention)

    async def handle(self, mention: Mention) -> int | None:
        """Record the mention as a job; returns the job id (None when deliberately ignored)."""
        metrics.MENTIONS_RECEIVED.labels(account=mention.bot_account).inc()
        existing = await self.queue.find(mention.platform, mention.bot_account, mention.remote_id)
        if existing is not None:
            if mention.edited_at and existing.state == JobState.QUEUED:
                await self._apply_edit(existing, mention)
            return int(existing.id)

        if self._too_old(mention):
            log.info(
                "ignored %s from %s: older than queue.max_request_age_hours",
                mention.remote_id,
                mention.author.acct,
            )
            return None
        private = wants_private(mention.text)  # the grammar decides, once, for every path
        decision = await self.policy.check_requester(mention.author)
        if not decision.allowed:
            return await self._refuse(mention, decision, private=private)
        try:
            return await self._decide(mention, private)
        except PromptError as err:
            return await self._refuse_prompt(mention, err, private)
        except Exception:
            # A bug must not wedge the inbox (an unacknowledged mention comes back forever):
            # record it, tell the requester once. A database error re-raises from _record.
            log.exception("could not handle %s from %s", mention.remote_id, mention.author.acct)
            return await self._record(
                mention,
                kind="mention",
                state=JobState.REJECTED,
                error_code="internal_error",
                reply=True,
                visibility=Visibility.DIRECT if private else None,
            )

    async def _decide(self, mention: Mention, private: bool) -> int | None:
        parsed = parse(mention.text, self.rules)
        private = parsed.private  # the same reading as wants_private()
        direct = Visibility.DIRECT if private else None
        if parsed.command == "help":
            return await self._record(
                mention, kind="help", state=JobState.GENERATED, visibility=direct
            )
        if parsed.command == "delete":
            return await self._delete(mention, private)
        base: dict[str, Any] | None = None
        original: Any = None
        visibility = reply_visibility(
            mention.visibility, self._public_reply_visibility(mention.bot_account)
        )
        if parsed.command == "again":
            original = await self._original(mention)
            base = dict((original.params or {}).get("options") or {}) if original else {}
            if original is None or original.kind != "mention" or not base.get("prompt"):
                return await self._notice(mention, "not_a_result", private)
            if original.requester != mention.author.acct.lower():
                return await self._notice(mention, "not_allowed", private)
            # never wider than the result being re-rolled
            visibility = visibility.narrowest(Visibility(original.visibility))
        # image-to-image: a picture comes with the request (or --strength asks for the one
        # of the post it answers), or `again` re-rolls a result made from a picture
        picture: PictureInput | None = None
        fetch_picture = has_picture(mention) or (
            parsed.strength is not None and bool(mention.attachments)
        )
        if parsed.command == "again" and base and base.get("picture") and original is not None:
            picture = _picture_from_row(await self.queue.picture(int(original.id)))
        options = self.resolve(parsed, base, picture=fetch_picture or picture is not None)
        decision = self.policy.check_prompt(options.prompt, options.negative_prompt)
        if decision.allowed:
            decision = await self.policy.check_quota(mention.author, options.n)
        if not decision.allowed:
            return await self._refuse(mention, decision, options, private)
        extra: dict[str, Any] = {}
        if fetch_picture:
            try:
                picture = await self.pictures.load(mention, options.prompt, options.negative_prompt)
            except PictureError as err:
                return await self._refuse_picture(mention, err, options, private)
        if picture is not None:
            extra["picture"] = {
                "alt_text": picture.alt_text,
                "source_url": picture.source_url,
                "width": picture.width,
                "height": picture.height,
                "mime_type": picture.mime_type,
            }
        if private:
            visibility = Visibility.DIRECT
        return await self._record(
            mention,
            kind="mention",
            state=JobState.QUEUED,
            options=options,
            visibility=visibility,
            params=extra,
            picture=picture,
        )

    async def _refuse_picture(
        self, mention: Mention, err: PictureError, options: Options, private: bool
    ) -> int:
        log.info("refused %s from %s: %s", mention.remote_id, mention.author.acct, err)
        return await self._record(
            mention,
            kind="mention",
            state=JobState.REJECTED,
            options=options,
            error_code=err.code,
            error_message=err.message,
            reply=self.config.policy.reply_on_refusal.bad_prompt,
            params={"reason": err.message},
            visibility=Visibility.DIRECT if private else None,
        )

    def _too_old(self, mention: Mention) -> bool:
        limit = self.config.queue.max_request_age_hours
        if not limit:
            return False
        created = mention.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        age = self.policy.clock() - created.timestamp()
        return age > limit * 3600

    # ------------------------------------------------------------------ options
    def resolve(
        self, parsed: ParsedRequest, base: dict[str, Any] | None = None, *, picture: bool = False
    ) -> Options:
        return resolve_options(self.config, parsed, base, picture=picture)

    def _public_reply_visibility(self, account: str) -> str:
        try:
            acc = self.config.account(account)
        except Exception:
            return "unlisted"
        return getattr(acc, "public_reply_visibility", "unlisted")

    # ------------------------------------------------------------------ records
    async def _record(
        self,
        mention: Mention,
        *,
        kind: str,
        state: str,
        options: Options | None = None,
        visibility: Visibility | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        reply: bool = False,
        params: dict[str, Any] | None = None,
        remote_id: str | None = None,
        picture: PictureInput | None = None,
    ) -> int:
        vis = visibility or reply_visibility(
            mention.visibility, self._public_reply_visibility(mention.bot_account)
        )
        extra = dict(params or {})
        # one refusal reply per requester per window: a flood gets one answer
        if (
            reply
            and state == JobState.REJECTED
            and not await self.policy.may_reply_to_refusal(mention.author.acct)
        ):
            reply = False
            extra["reply_suppressed"] = True
        if options is not None:
            extra["options"] = dataclasses.asdict(options)
        job = NewJob(
            platform=mention.platform,
            bot_account=mention.bot_account,
            remote_id=remote_id or mention.remote_id,
            requester=mention.author.acct.lower(),
            requester_domain=mention.author.domain,
            kind=kind,
            state=state,
            visibility=vis.value,
            request=mention_to_dict(mention),
            params=extra,
            error_code=error_code,
            error_message=error_message,
            reply_state=ReplyState.PENDING if reply else ReplyState.NONE,
            picture=picture if state == JobState.QUEUED else None,
        )
        if options is not None:
            for name, value in job_columns(options).items():
                if name != "batch_key":  # the queue makes it from the same columns
                    setattr(job, name, value)
        result = await self.queue.enqueue(job)
        return result.job_id

    async def _refuse(
        self,
        mention: Mention,
        decision: Decision,
        options: Options | None = None,
        private: bool = False,
    ) -> int:
        log.info("refused %s from %s: %s", mention.remote_id, mention.author.acct, decision.reason)
        return await self._record(
            mention,
            kind="mention",
            state=JobState.REJECTED,
            options=options,
            error_code=decision.code,
            error_message=decision.message,
            reply=decision.reply,
            params={"reason": decision.reason},
            visibility=Visibility.DIRECT if private else None,
        )

    async def _refuse_prompt(
        self, mention: Mention, err: PromptError, private: bool = False
    ) -> int:
        reply = self.config.policy.reply_on_refusal.bad_prompt
        # One pointer to help: some messages (an unknown option) carry their own already.
        hint = "" if "'help'" in err.message else "\nSend 'help' for how to ask."
        return await self._record(
            mention,
            kind="mention",
            state=JobState.REJECTED,
            error_code=err.code,
            error_message=f"{err.message}{hint}",
            reply=reply,
            params={"reason": err.message},
            visibility=Visibility.DIRECT if private else None,
        )

    async def _notice(self, mention: Mention, code: str, private: bool = False) -> int:
        return await self._record(
            mention,
            kind="mention",
            state=JobState.REJECTED,
            error_code=code,
            reply=True,
            visibility=Visibility.DIRECT if private else None,
        )

    async def _original(self, mention: Mention) -> Any:
        if not mention.in_reply_to_id:
            return None
        return await self.queue.find_by_reply(
            mention.platform, mention.bot_account, mention.in_reply_to_id
        )

    async def _delete(self, mention: Mention, private: bool = False) -> int:
        original = await self._original(mention)
        if original is None:
            return await self._notice(mention, "not_a_result", private)
        if original.requester != mention.author.acct.lower():
            return await self._notice(mention, "not_allowed", private)
        return await self._record(
            mention,
            kind="delete",
            state=JobState.GENERATED,
            visibility=Visibility.DIRECT if private else None,
            params={"target_remote_id": original.reply_remote_id, "target_job": original.id},
        )

    async def _apply_edit(self, existing: Any, mention: Mention) -> None:
        """A request edited before generation started is generated in its latest form:
        every option, and a reply visibility never wider than the edited request."""
        try:
            parsed = parse(mention.text, self.rules)
            if parsed.command != "generate":
                return
            had_picture = bool(((existing.params or {}).get("options") or {}).get("picture"))
            options = self.resolve(parsed, picture=had_picture)
        except PromptError:
            return  # the first version stays; it was valid
        if not self.policy.check_prompt(options.prompt, options.negative_prompt).allowed:
            await self.queue.cancel(int(existing.id), "edited into a refused prompt")
            return
        if options.n > int(existing.n):  # more images: the quotas decide again
            decision = await self.policy.check_quota(
                mention.author, options.n, exclude_job_id=int(existing.id)
            )
            if not decision.allowed:
                await self._refuse_edit(existing, mention, decision, parsed.private)
                return
        visibility = reply_visibility(
            mention.visibility, self._public_reply_visibility(mention.bot_account)
        ).narrowest(Visibility(existing.visibility))
        if parsed.private:
            visibility = Visibility.DIRECT
        columns = job_columns(options)
        del columns["mode"], columns["strength"]  # in the batch key and the options
        await self.queue.update_queued(
            int(existing.id),
            **columns,
            visibility=visibility.value,
            request=mention_to_dict(mention),
            params={**(existing.params or {}), "options": dataclasses.asdict(options)},
        )

    async def _refuse_edit(
        self, existing: Any, mention: Mention, decision: Decision, private: bool
    ) -> None:
        """The edit is not applied (the job keeps its values); the refusal is recorded as its
        own job under the edited post, once per edit."""
        stamp = mention.edited_at.timestamp() if mention.edited_at else 0.0
        log.info(
            "refused edit of %s from %s: %s",
            mention.remote_id,
            mention.author.acct,
            decision.reason,
        )
        await self._record(
            mention,
            kind="mention",
            state=JobState.REJECTED,
            error_code=decision.code,
            error_message=f"{decision.message}\nYour edit was not applied; "
            f"the request stays as it was (--n {existing.n}).",
            reply=decision.reply,
            params={"reason": decision.reason, "edit_of": int(existing.id)},
            visibility=Visibility.DIRECT if private else Visibility(existing.visibility),
            remote_id=f"{mention.remote_id}#edit-{stamp:.0f}",
        )


def _picture_from_row(row: Any) -> PictureInput | None:
    if row is None:
        return None
    return PictureInput(
        data=bytes(row.data),
        mime_type=row.mime_type,
        width=int(row.width),
        height=int(row.height),
        alt_text=row.alt_text or "",
        source_url=row.source_url or "",
    )
