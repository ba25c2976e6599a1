#!/bin/sh
# A command kind in shell: counts down from params.from (default 10), a second per step, and
# checkpoints what is left, so that the next attempt after a rollout carries on from there.
input=$(cat)  # one JSON object: {"task_id","kind","attempt","params","checkpoint"}
number() { printf '%s' "$input" | sed -n "s/.*\"$1\":\([0-9][0-9]*\).*/\1/p" | head -n 1; }
from=$(number from); from=${from:-10}
left=$(number left); left=${left:-$from}  # the checkpoint, if an earlier attempt left one
echo "attempt $QUIESCE_ATTEMPT of task $QUIESCE_TASK_ID: $left of $from left"
while [ "$left" -gt 0 ]; do
  sleep 1
  left=$((left - 1))
  echo "{\"checkpoint\":{\"left\":$left}}" >&3
  echo "{\"progress\":$(( (from - left) * 100 / from ))e-2}" >&3
done
echo "{\"result\":{\"counted\":$from}}" >&3
