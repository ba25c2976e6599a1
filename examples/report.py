#!/usr/bin/python3
"""A command kind in Python: renders a report page by page (here: a pause per page).

quiesce writes one JSON object on stdin: {"task_id", "kind", "attempt", "params", "checkpoint"}.
Lines on descriptor 3 talk back: {"progress": 0.4}, {"checkpoint": ...}, {"result": ...}.
A checkpoint is handed to the next attempt, so a rollout costs at most one page.
"""
import json
import os
import sys
import time

job = json.load(sys.stdin)
quiesce = os.fdopen(3, "w", buffering=1)  # line-buffered: each line reaches quiesce at once


def say(**message):
    quiesce.write(json.dumps(message) + "\n")


pages = int(job["params"].get("pages", 10))
done = (job["checkpoint"] or {}).get("pages_done", 0)
print(f"attempt {job['attempt']}: {pages} pages, {done} done before", flush=True)
for page in range(done, pages):
    time.sleep(float(job["params"].get("seconds_per_page", 1)))  # the work of one page
    say(checkpoint={"pages_done": page + 1})
    say(progress=(page + 1) / pages, message=f"page {page + 1} of {pages}")
say(result={"pages": pages, "resumed_from": done})
