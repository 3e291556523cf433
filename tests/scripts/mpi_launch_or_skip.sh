#!/bin/bash
# Runs an MPI-launched gpu test: `mpi_launch_or_skip.sh LAUNCHER ARGS...` execs LAUNCHER ARGS
# when LAUNCHER is an executable; otherwise the test reports SKIPPED (exit 77) and says why.
# A device machine may have no MPI at all, or only Debian's unpacked `mpiexec.openmpi` (the
# plain `mpiexec` is an alternatives link that an unpacked package does not make); then CMake
# records MPIEXEC_EXECUTABLE-NOTFOUND and the CUDA tests still decide the result. Tests with
# the mpi label alone are not wrapped: without a launcher they fail, as they must on CI.
set -u
launcher=${1:-}
if [ -z "$launcher" ] || ! command -v "$launcher" >/dev/null 2>&1; then
    echo "SKIPPED: no MPI launcher ('${launcher}' is not an executable): configure with" \
         "-DMPIEXEC_EXECUTABLE=/path/to/mpiexec (for unpacked Debian packages: usr/bin/mpiexec.openmpi)"
    exit 77
fi
shift
exec "$launcher" "$@"
