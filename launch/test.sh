#!/usr/bin/env bash
# Installs what is missing, configures a fresh Release build in build/, builds, and runs
# the whole CTest suite (about 2 minutes on 2 idle cores; labels unit, e2e, mpi, gpu, slow,
# multinode, cluster as defined in tests/CMakeLists.txt; gpu tests report SKIPPED without a
# GPU, cluster and multinode ones without root).
# Extra arguments go to ctest, e.g. `bash launch/test.sh -L unit` (under 30 s of tests) or
# `-LE slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
ctest --test-dir build --output-on-failure -j 2 "$@"
