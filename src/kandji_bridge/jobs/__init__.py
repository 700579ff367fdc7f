"""Jobs: a source's polling or a mapping's sync, run one at a time across processes.

`leases.py` decides which process runs a job, `exclusive.py` holds a job for a run outside the
scheduler, `status.py` records how each job's runs went, `counters.py` counts what this process
did, and `runner.py` is how a front end asks for a run (the scheduler's, or one run now).
"""
