#!/bin/sh
# @description Streams a few lines slowly; needs no Azure. Try it right after `npm start`.
# @param name pattern=[A-Za-z0-9_-]{1,40} default=world Who to greet
# @param count pattern=[0-9]{1,2} default=5 How many lines
# @param delay pattern=[0-9](\.[0-9])? default=1 Seconds between lines
set -eu
echo "hello, $name (job $ARMHOOK_JOB_ID, run by $ARMHOOK_USER)"
i=1
while [ "$i" -le "$count" ]; do
  sleep "$delay"
  echo "line $i of $count"
  i=$((i + 1))
done
echo "a line on stderr, to show event: stderr" >&2
echo "done"
