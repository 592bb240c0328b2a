#!/usr/bin/env bash
# Renders the landing page with demo data in headless Chromium and saves it (default: docs/landing-page.png).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/screenshot_landing.py "${1:-docs/landing-page.png}"
