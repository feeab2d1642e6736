"""Background jobs on procrastinate, enqueued inside the transaction that causes them."""
