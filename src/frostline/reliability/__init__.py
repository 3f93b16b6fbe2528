"""Reliability: resumable runs, campaign locks, store retries, oracle time-outs, fault reports.

| module | what |
| --- | --- |
| ``errors`` | ``CampaignError``: a campaign cannot run or stopped; one line for the CLI |
| ``locking`` | one ``frostline run`` per campaign directory (``fcntl.flock`` on ``DIR/.lock``) |
| ``memo`` | finished fine-tunes and explorations are reused when a killed run is resumed |
| ``retry`` | MongoDB stores whose operations retry with backoff through a store outage |
| ``timeouts`` | an ASE-calculator oracle stopped after ``oracle.timeout_s`` seconds |
| ``faults`` | failed jobs of a run collected from jobflow's log into one-line fault records |
| ``chaos`` | kill -9 harness and store-consistency checks (tests and ``workflows/benchmarks``) |
"""
