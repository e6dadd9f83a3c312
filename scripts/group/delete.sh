#!/bin/bash
# @description Delete a resource group and everything in it. Irreversible.
# @param rg required pattern=[A-Za-z0-9._()-]{1,90} Resource group to delete
# @param confirm required pattern=yes Must be "yes"
# @timeout 3600
set -euo pipefail
az login --identity --output none
echo "Deleting resource group $rg..."
az group delete --name "$rg" --yes --output none
echo "deleted"
