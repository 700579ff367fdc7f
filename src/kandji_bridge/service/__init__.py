"""The long-running service behind `serve`: the runtime it shares, the scheduler, leases, metrics."""
