"""From a mention to a job: the prompt grammar, option resolution, ingest."""
