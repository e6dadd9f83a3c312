#!/bin/bash
# @description Create a resource group (if needed) and a Linux VM in it, with the VM's managed identity.
# @param rg required pattern=[A-Za-z0-9._()-]{1,90} Resource group
# @param vmname required pattern=[a-z][a-z0-9-]{0,62} VM name
# @param pw required secret Admin password (masked in every log and output)
# @param user default=azureuser pattern=[a-z_][a-z0-9_-]{0,31} Admin user name
# @param image default=Ubuntu2204 pattern=[A-Za-z0-9:._-]{1,128} Image URN or alias
# @param size default=Standard_B1s pattern=[A-Za-z0-9_]{1,64} VM size
# @param location pattern=[a-z0-9]{1,40} Region (default: this VM's)
# @timeout 1800
set -euo pipefail
location="${location:-${AZURE_LOCATION:-}}"
if [[ -z "$location" ]]; then echo "no location given and this VM's is unknown; pass location=" >&2; exit 2; fi

echo "Authenticating..."
az login --identity --output none
if [[ -n "${AZURE_SUBSCRIPTION_ID:-}" ]]; then az account set --subscription "$AZURE_SUBSCRIPTION_ID"; fi

echo "Ensuring resource group $rg in $location..."
az group create --name "$rg" --location "$location" --output none

echo "Creating VM $vmname ($size, $image)..."
# az only takes the password as an argument, so it is visible in the process list while az runs;
# armhook masks it in every log and output. Prefer SSH keys where you can.
az vm create --resource-group "$rg" --name "$vmname" --image "$image" --size "$size" \
  --admin-username "$user" --admin-password "$pw" --authentication-type password \
  --output json
echo "VM $vmname created in $rg"
