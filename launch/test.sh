#!/usr/bin/env bash
# Installs what is missing, configures a fresh Release build in build/, builds, and runs
# the whole CTest suite (labels unit, mpi, gpu; gpu tests report SKIPPED without a GPU).
# Extra arguments go to ctest, e.g. `bash launch/test.sh -L unit` or `-LE slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
ctest --test-dir build --output-on-failure -j 2 "$@"
