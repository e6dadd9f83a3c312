#!/bin/sh
# @description Azure Event Grid receiver: prints the type and subject of each delivered event (Event Grid or CloudEvents schema). The subscription handshake is answered by armhook itself.
# @respond async
# @params none
set -eu
python3 -c '
import json, sys
events = json.load(sys.stdin)
if isinstance(events, dict):
    events = [events]
print("events: %d" % len(events))
for e in events:
    kind = e.get("eventType") or e.get("type") or "?"
    print("  %s %s (%s)" % (kind, e.get("subject", ""), e.get("id", "")))
'
