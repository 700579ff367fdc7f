"""A simulated Kandji tenant that behaves as Kandji's API is documented, for tests, benchmarks,
`simulate` and `demo`.

Read in this order: config (what a tenant looks like), catalog (real-world reference data),
tenant (seeded devices, users, blueprints), event_kinds and events (the audit log), audit,
devices and details (the three endpoints), ratelimit, faults, stats, state (one tenant at run
time), app (the ASGI app), server (running it over HTTP).
"""
