"""Moderation: who may use the bot and what may be asked for or posted."""
