#!/usr/bin/env bash
# System packages for the GUI test (deepict_scipion/tests/test_gui.py): a virtual X server, a tool to
# find and move windows, and screenshot tools. Does nothing when they are all installed already.
set -euo pipefail
PACKAGES=(xvfb xdotool imagemagick x11-apps)
missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "gui-deps: ${PACKAGES[*]} already installed"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "gui-deps: installing ${missing[*]}"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
