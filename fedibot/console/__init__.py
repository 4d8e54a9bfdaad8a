"""The operator console: a small server-rendered web UI (aiohttp + Jinja2) over the same
database as the bot — overview, gallery, review queue, allow-list, users and audit log.

Served on its own port by `fedibot run` (when `[console] enabled = true`) and by
`fedibot console`. See docs/console.md.
"""
