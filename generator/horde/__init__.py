"""The AI Horde (https://aihorde.net) as a second image backend, for operators without a GPU
and as overflow when the local queue is long. See docs/horde.md.

Modules: `config` (settings), `api` (pydantic shapes of the published OpenAPI description),
`codes` (our stable codes and the Horde rc table), `ratelimit`, `client` (REST on aiohttp),
`store` (durable job records: protocol + in-memory), `flow` (the per-job state machine),
`overflow` (the routing rule), `images` (decode and hand images to the safety pipeline),
`worker` (the loop that claims jobs and runs flows). Nothing here imports torch.
"""
