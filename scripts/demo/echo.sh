#!/bin/sh
# @description Prints its parameters and stdin back; needs no Azure. Handy to test a client.
# Undeclared on purpose: any parameter name is accepted and becomes a variable.
env | grep -E '^[a-z][a-z0-9_]*=' | sort
if [ -n "${ARMHOOK_JOB_ID:-}" ]; then echo "job: $ARMHOOK_JOB_ID"; fi
cat
