#!/usr/bin/env bash
# Installs the Debian packages cutover needs to build, test and run its demo.
# Runs apt-get update once and apt-get install -y when something is missing,
# and always under CI=true, so a green CI run proves a fresh machine works.
set -euo pipefail

pkgs=("$@")
missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ] && [ "${CI:-}" != "true" ]; then
    exit 0
fi

sudo=
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
fi

echo "deps: installing ${missing[*]:-(CI: re-checking all)}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
echo "deps: ok"
