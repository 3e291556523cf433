#!/usr/bin/env bash
# Installs what pfgm needs to build and test on Debian 12 (apt-get, when run as root);
# `install_deps.sh plot` also installs python3-matplotlib for launch/plot_metrics.py.
# Idempotent: packages already present are not touched. Without root it only reports
# what is missing. The CUDA toolkit is optional and never installed here.
set -euo pipefail
pkgs=(build-essential cmake pkg-config
      libopenmpi-dev openmpi-bin
      libhdf5-dev hdf5-tools
      libyaml-dev libcmocka-dev libjansson-dev
      libopenblas-dev libpng-dev libjpeg62-turbo-dev zlib1g-dev
      dataset-fashion-mnist shellcheck
      slurm-wlm munge)   # slurm-wlm, munge: only the real-SLURM test (tests/slurm_real.cmake)
# `install_deps.sh plot` adds what launch/plot_metrics.py draws with (the quick start's loss
# curve); the build and the tests do not need it.
[ "${1:-}" = plot ] && pkgs+=(python3-matplotlib)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install_deps: missing packages (run as root, or ask your admin): ${missing[*]}" >&2
  exit 1
fi
echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
