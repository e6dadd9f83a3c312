#!/bin/bash
# @description Create a resource group and a Windows Server VM in it (the founding example): rg, vmname, pw.
# @params any
# @param pw required secret The VM's admin password (masked in every log, record and output)
#
# Called as: curl --user api -XPOST "https://<runner>/vm/create?vmname=myvm&rg=myrg&pw=…"
# It prints what the published walkthrough printed: each step's name, then az's JSON.
set -euo pipefail

if ! command -v az >/dev/null; then
  echo "the Azure CLI (az) is not installed on this runner: install Microsoft's azure-cli package (see the README, \"Scripts that run az\")" >&2
  exit 127
fi
: "${rg:?pass rg=<resource group>}" "${vmname:?pass vmname=<VM name>}"

# Each az runs on its own line first: a failure inside "echo ...`az ...`" would not stop the
# script (set -e ignores it there), and the job would report success.
login=$(az login --identity)
echo "Authenticating...$login"
group=$(az group create -n "$rg" -l westeurope)
echo "Creating the resource group...$group"
# az takes the password only as an argument, so it is in the process list while az runs.
vm=$(az vm create --no-wait --size Standard_B1s --resource-group "$rg" --name "$vmname" --image win2016datacenter --admin-username azureuser --admin-password "$pw")
echo "Creating the vm...$vm"
