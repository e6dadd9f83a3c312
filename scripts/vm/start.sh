#!/bin/bash
# @description Start a VM.
# @param rg required pattern=[A-Za-z0-9._()-]{1,90} Resource group
# @param vmname required pattern=[a-z][a-z0-9-]{0,62} VM name
set -euo pipefail
az login --identity --output none
echo "Starting $vmname in $rg..."
az vm start --resource-group "$rg" --name "$vmname" --output none
echo "started"
