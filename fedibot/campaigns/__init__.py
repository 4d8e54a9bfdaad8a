"""Scheduled campaign posts: config in `fedibot.config.campaigns`, runs in `manager`."""
