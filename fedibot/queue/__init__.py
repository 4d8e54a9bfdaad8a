"""The durable job queue: enqueue, claim and lease, replies' state machine, maintenance."""
