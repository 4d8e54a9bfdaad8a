"""Everything the bot posts: composing replies and posting each one exactly once."""
