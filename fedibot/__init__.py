"""fedibot: a self-hosted, moderation-aware AI image bot for the Fediverse."""

__version__ = "0.1.0"
