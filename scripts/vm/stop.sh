#!/bin/bash
# @description Stop and deallocate a VM (no compute charges while stopped).
# @param rg required pattern=[A-Za-z0-9._()-]{1,90} Resource group
# @param vmname required pattern=[a-z][a-z0-9-]{0,62} VM name
set -euo pipefail
az login --identity --output none
echo "Deallocating $vmname in $rg..."
az vm deallocate --resource-group "$rg" --name "$vmname" --output none
echo "deallocated"
