#!/usr/bin/env bash
# System packages for the GUI test (deepict_scipion/tests/test_gui.py) and Scipion's own viewers: a virtual X
# server, a tool to find and move windows, screenshot tools, and the X libraries of Qt's xcb platform plugin.
# Does nothing when they are all installed already.
set -euo pipefail
# Scipion's "Analyze results" of a set (e.g. tomogram masks) opens pwem's metadata viewer, a PyQt5 program:
# without these Qt stops with "Could not load the Qt platform plugin "xcb"" (libxcb-icccm4, libxcb-keysyms1 and
# libxcb-xinerama0 were missing on Debian 12; the others are what PyQt5's libqxcb.so links to besides).
QT_XCB_PACKAGES=(libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 libxcb-randr0 libxcb-render0
                 libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-util1 libxcb-xfixes0 libxcb-xkb1
                 libxkbcommon-x11-0 libx11-xcb1 libfontconfig1 libgl1)
PACKAGES=(xvfb xdotool imagemagick x11-apps "${QT_XCB_PACKAGES[@]}")
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
