"""One Python tracking process of the fleet-mode run (tests/fleet/mixed.py).

Same protocol as core/examples/fleet_worker.rs: environment FLEET_*, prints
``ready``, starts on a line from stdin, prints its stats as one JSON line.
"""
import json
import os
import sys

import trackcore

env = os.environ.get
options = dict(access_token=env("FLEET_TOKEN"), base_url=env("FLEET_EMULATOR"),
               rate_limit_per_minute=int(env("FLEET_RATE")), max_in_flight=16)
if env("FLEET_REDIS"):
    options.update(shared_budget=env("FLEET_REDIS"), shared_budget_prefix=env("FLEET_PREFIX"))
tracker = trackcore.Tracker(**options)
print("ready", flush=True)
sys.stdin.readline()
who = env("FLEET_NAME")
for i in range(int(env("FLEET_EVENTS"))):
    tracker.track("fleet-run", user_id=f"{who}-{i}", metadata={"i": i})
flushed = tracker.flush(timeout=120)
print(json.dumps({"flushed": flushed, **{k: int(v) for k, v in tracker.stats().items()}}), flush=True)
