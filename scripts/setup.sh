#!/usr/bin/env bash
# Set up synthproxy on a fresh Debian/Ubuntu machine; safe to run again (does only what is missing).
#   - Debian packages: amsynth (the amSynth VST2 plugin and its preset banks), fluidsynth and
#     fluid-soundfont-gm (the out-of-domain NSynth-like set), chromium (the report's browser test); as root
#     (CI): slurmctld slurmd slurm-client munge, for the SLURM tests (tests/test_slurm.py)
#   - .venv with Python >= 3.11, the pinned dependencies of requirements.lock, and the package (editable)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(amsynth fluidsynth fluid-soundfont-gm chromium)
# tests/test_slurm.py starts a throw-away single-node SLURM cluster, which needs root: install SLURM where the
# tests run as root (CI); SYNTHPROXY_SLURM=1 / =0 forces / skips it. The packages start no daemon by themselves.
if [ "${SYNTHPROXY_SLURM:-$([ "$(id -u)" -eq 0 ] && echo 1 || echo 0)}" = 1 ]; then
  APT_PACKAGES+=(slurmctld slurmd slurm-client munge)
fi
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "setup: Python >= 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
  echo "setup: creating .venv"
  "$python" -m venv .venv
fi

stamp=.venv/.synthproxy-setup
if [ ! -f "$stamp" ] || [ requirements.lock -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing pinned Python dependencies (requirements.lock)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps -e .
  touch "$stamp"
fi
echo "setup: ready ($(.venv/bin/python -c 'import synthproxy; print("synthproxy", synthproxy.__version__)'))"
