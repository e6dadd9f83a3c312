#!/bin/sh
# @description GitHub push receiver: prints the ref, the pusher and the commits of a push (checks out nothing). Sign it with a "github" entry in the access file.
# @respond async
# @param event required from=header:X-GitHub-Event pattern=[a-z_]{1,64} The GitHub event (push, ping, …)
# @param delivery required from=header:X-GitHub-Delivery pattern=[0-9a-fA-F-]{1,64} GitHub's delivery id
# @param ref from=/ref The pushed ref (refs/heads/main)
set -eu
echo "GitHub $event delivery $delivery"
if [ "$event" = ping ]; then
  echo "ping: the webhook is set up"
  exit 0
fi
if [ "$event" != push ]; then
  echo "ignoring a $event event"
  exit 0
fi
echo "ref: ${ref:-?}"
# The delivery (stdin) is the push payload; python3 reads it without jq.
python3 -c '
import json, sys
push = json.load(sys.stdin)
pusher = push.get("pusher") or {}
print("pusher: %s <%s>" % (pusher.get("name", "?"), pusher.get("email", "?")))
commits = push.get("commits") or []
print("commits: %d" % len(commits))
for c in commits:
    message = (c.get("message") or "").splitlines()[0:1]
    print("  %s %s (%s)" % (c.get("id", "")[:12], message[0] if message else "", (c.get("author") or {}).get("name", "?")))
'
