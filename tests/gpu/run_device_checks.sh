#!/usr/bin/env bash
# Device checks of the CUDA backend, for a machine with an NVIDIA GPU (issue "CUDA backend and
# NCCL"): reports the machine and which libraries pfgm needs are present, configures and builds
# pfgm (Release, -DPFGM_CUDA=ON) with the gpu tests and the training-step benchmark, runs
# `ctest -L gpu`, then tests/bench/bench_train_step on configs/cifar10_ddpmpp.yaml at the
# authors' batch sizes (4096 charges, 128 perturbed points): images/s, the share of time in
# the field targets, and MFU against the card's measured fp32/TF32/bf16 GEMM rates. Everything
# goes to a report file: $OUT/device_report.txt when $OUT is set, else build/device_report.txt.
# Every phase runs under `timeout` inside one overall budget, so the script ends in under
# 8 minutes (PFGM_CHECK_BUDGET_S, default 450 s). Exit status 0 when the build, every gpu test
# and the benchmark succeeded, 1 otherwise (the report says which).
#
# Usage (from anywhere; it works in the repository that holds it):
#   tests/gpu/run_device_checks.sh                 the checks
#   tests/gpu/run_device_checks.sh --fetch-deps DIR
#       on a Debian/Ubuntu machine WITH the libraries and a CUDA build of pfgm (build-*/), not
#       the device: downloads (apt-get download) the -dev packages and the packages of every
#       shared library the gpu tests load (from ldd, minus glibc, the compiler runtime and
#       CUDA) into DIR (~30 MB of .deb files; unpacked they exceed what travels to the device
#       machine, so the checks unpack them there).
#
# Environment:
#   PFGM_DEPS_PREFIX   for a machine that lacks MPI, HDF5, libyaml, jansson, cmocka, OpenBLAS
#                      or libpng: a folder of unpacked Debian packages, or of .deb files (from
#                      --fetch-deps), which are then unpacked (dpkg -x) into <build>/deps first.
#                      Its usr/ goes first on CMAKE_PREFIX_PATH, its library folders on
#                      LD_LIBRARY_PATH, its pkg-config files (paths rewritten into the folder)
#                      on PKG_CONFIG_PATH, and MPI/HDF5 are pointed at it when the system has none
#   PFGM_DEPS_ONLY=1   take MPI and HDF5 from PFGM_DEPS_PREFIX even where the system has them
#   PFGM_SHARED_DIR    folder holding testvectors/ (default: <repo>/shared, else <repo>/../shared);
#                      sets PFGM_DDPMPP_FIXTURE and PFGM_TEST_VECTORS for the tests
#   PFGM_BUILD_DIR     build folder (default <repo>/build-device)
#   PFGM_CUDA_ARCH     CMAKE_CUDA_ARCHITECTURES (default 90: H100/H200)
#   PFGM_CHECK_BUDGET_S  overall time budget in seconds (default 450)
#
# On the project's device machine (one H200, nothing reachable from it, possibly without MPI or
# HDF5), from the development machine:
#   echo /.device/ >> .git/info/exclude
#   tests/gpu/run_device_checks.sh --fetch-deps .device/debs
#   mkdir -p .device/shared && cp -r ../shared/testvectors .device/shared/
# then run with carry [".device"] the command
#   PFGM_DEPS_PREFIX=$PWD/.device/debs PFGM_SHARED_DIR=$PWD/.device/shared tests/gpu/run_device_checks.sh
# and read device_report.txt from the files that come back.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1

# ---- --fetch-deps: gather packages on a development machine ------------------------------
if [ "${1:-}" = "--fetch-deps" ]; then
    DEST=${2:?usage: $0 --fetch-deps DIR}
    BIN=$(ls -t "$ROOT"/build-*/tests/test_cuda_model 2>/dev/null | head -1)
    [ -n "$BIN" ] || { echo "no build-*/tests/test_cuda_model: build pfgm with CUDA here first" >&2; exit 1; }
    command -v apt-get >/dev/null && command -v dpkg >/dev/null || { echo "needs apt-get and dpkg" >&2; exit 1; }
    DEV="libopenmpi-dev libhdf5-dev libyaml-dev libjansson-dev libcmocka-dev libopenblas-dev libpng-dev libpng16-16 zlib1g-dev
         pkgconf pkgconf-bin libpkgconf3"
    # every shared library the test loads, by owning package, without the C library, the
    # compiler runtime, and CUDA (which the device has)
    RUNTIME=$(ldd "$BIN" | awk '/=> \//{print $3}' | xargs -r readlink -f | sort -u |
        while read -r f; do { dpkg -S "$f" || dpkg -S "${f#/usr}"; } 2>/dev/null | head -1 | cut -d: -f1; done | sort -u |
        grep -v -E '^(libc6|libgcc-s1|libstdc\+\+6|libgomp1|libcuda|cuda-|libnccl|libcublas)' || true)
    # openblas-dev's real files sit in the flavour packages
    PKGS=$(printf '%s\n' $DEV $RUNTIME libopenblas-pthread-dev libopenblas0-pthread | sort -u)
    mkdir -p "$DEST"
    (cd "$DEST" && apt-get download $PKGS) || { echo "apt-get download failed" >&2; exit 1; }
    echo "downloaded $(echo $PKGS | wc -w) packages into $DEST ($(du -sh "$DEST" | cut -f1)):"
    echo $PKGS
    exit 0
fi

# ---- set-up --------------------------------------------------------------------------------
BUDGET=${PFGM_CHECK_BUDGET_S:-450}
START=$(date +%s)
BUILD=${PFGM_BUILD_DIR:-$ROOT/build-device}
if [ -n "${OUT:-}" ]; then REPORT=$OUT/device_report.txt; LOGS=$OUT; else REPORT=$ROOT/build/device_report.txt; LOGS=$BUILD/logs; fi
mkdir -p "$(dirname "$REPORT")" "$LOGS" "$BUILD"
: > "$REPORT"
FAILED=()

say() { printf '%s\n' "$*" | tee -a "$REPORT"; }
left() { echo $((BUDGET - ($(date +%s) - START))); }
# limited NAME MAX_S LOG CMD...: runs CMD under timeout (MAX_S, capped by what is left of the
# budget), output to LOG; returns its status (124: timed out).
limited() {
    local name=$1 max=$2 log=$3 t
    shift 3
    t=$(left)
    t=$((t - 5 < max ? t - 5 : max))
    if [ "$t" -lt 10 ]; then
        say "[$name] not run: the time budget is spent"
        return 124
    fi
    local t0=$(date +%s) rc
    timeout -k 10 "$t" "$@" > "$log" 2>&1
    rc=$?
    say "[$name] exit $rc after $(($(date +%s) - t0)) s (limit $t s)$([ $rc -eq 124 ] && echo ': TIMED OUT')"
    return $rc
}

say "pfgm device checks, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with local changes)')"
say "host $(hostname), $(uname -srm), $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
if command -v nvidia-smi >/dev/null; then
    say "gpu  $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -4 | tr '\n' ';')"
else
    say "gpu  nvidia-smi not found"
fi
say "nvcc $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo 'not found')"
say "cmake $(cmake --version 2>/dev/null | head -1 | awk '{print $3}')"

# ---- libraries -------------------------------------------------------------------------------
P=${PFGM_DEPS_PREFIX:-}
if [ -n "$P" ]; then
    P=$(cd "$P" && pwd) || exit 1
    if ls "$P"/*.deb >/dev/null 2>&1; then
        rm -rf "$BUILD/deps" && mkdir -p "$BUILD/deps"
        for f in "$P"/*.deb; do dpkg -x "$f" "$BUILD/deps" || say "cannot unpack $f"; done
        say "unpacked $(ls "$P"/*.deb | wc -l) packages of $P into $BUILD/deps"
        P=$BUILD/deps
    fi
fi
MULTI=x86_64-linux-gnu
declare -A FOUND
LDCACHE=$(ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null)
say "libraries (ldconfig -p${P:+, then PFGM_DEPS_PREFIX=$P}):"
for spec in mpi:libmpi.so hdf5:libhdf5 yaml:libyaml-0.so jansson:libjansson.so cmocka:libcmocka.so \
    openblas:libopenblas.so png:libpng16.so zlib:libz.so nccl:libnccl.so; do
    name=${spec%%:*} pat=${spec#*:}
    in_prefix=
    [ -n "$P" ] && [ -n "$(find "$P" -name "${pat}*" -print -quit 2>/dev/null)" ] && in_prefix=1
    if [ -n "$in_prefix" ] && [ "${PFGM_DEPS_ONLY:-0}" = 1 ]; then
        FOUND[$name]=prefix
    elif grep -q "$pat" <<< "$LDCACHE"; then
        FOUND[$name]=system
    elif [ -n "$in_prefix" ]; then
        FOUND[$name]=prefix
    else
        FOUND[$name]=missing
    fi
    say "  $(printf '%-9s' "$name") ${FOUND[$name]}$([ "$name" = nccl ] && echo ' (optional: the NCCL communicator)')"
done
MISSING=$(for k in mpi hdf5 yaml jansson cmocka openblas png zlib; do [ "${FOUND[$k]}" = missing ] && printf '%s ' "$k"; done)
[ -n "$MISSING" ] && say "missing: $MISSING(set PFGM_DEPS_PREFIX to unpacked Debian packages, see the header of $0)"

CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=Release -DPFGM_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=${PFGM_CUDA_ARCH:-90}")
if [ -n "$P" ]; then
    export CMAKE_PREFIX_PATH="$P/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
    LIBDIRS="$P/usr/lib/$MULTI:$P/lib/$MULTI:$P/usr/lib/$MULTI/openblas-pthread:$P/usr/lib/$MULTI/hdf5/serial:$P/usr/lib/$MULTI/openmpi/lib"
    export LD_LIBRARY_PATH="$LIBDIRS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export OPAL_PREFIX="$P/usr"
    # the packages' pkg-config files name /usr: copies with the paths moved into the prefix
    PC=$BUILD/deps-pkgconfig
    rm -rf "$PC" && mkdir -p "$PC"
    for d in "$P/usr/lib/$MULTI/pkgconfig" "$P/usr/lib/$MULTI/openblas-pthread/pkgconfig" "$P/usr/share/pkgconfig"; do
        for f in "$d"/*.pc; do
            [ -e "$f" ] && sed -e "s#/usr/#$P/usr/#g" -e "s#=/usr\$#=$P/usr#" "$f" > "$PC/$(basename "$f")"
        done
    done
    export PKG_CONFIG_PATH="$PC${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    if ! command -v pkg-config >/dev/null && [ -x "$P/usr/bin/pkgconf" ]; then
        CMAKE_ARGS+=("-DPKG_CONFIG_EXECUTABLE=$P/usr/bin/pkgconf")
    fi
    if [ "${FOUND[mpi]}" = prefix ]; then
        CMAKE_ARGS+=("-DMPI_C_HEADER_DIR=$P/usr/lib/$MULTI/openmpi/include" -DMPI_C_LIB_NAMES=mpi
            "-DMPI_mpi_LIBRARY=$P/usr/lib/$MULTI/openmpi/lib/libmpi.so")
    fi
    # HDF5 from the prefix by its paths; /bin/false as the wrapper keeps a system h5cc from
    # being asked (FindHDF5 then searches, and takes these)
    [ "${FOUND[hdf5]}" = prefix ] && CMAKE_ARGS+=(-DHDF5_C_COMPILER_EXECUTABLE=/bin/false
        "-DHDF5_C_INCLUDE_DIR=$P/usr/include/hdf5/serial" "-DHDF5_C_LIBRARY_hdf5=$P/usr/lib/$MULTI/hdf5/serial/libhdf5.so")
fi

# test vectors: a carried copy inside the repository, else the one beside it
SHARED=${PFGM_SHARED_DIR:-}
[ -z "$SHARED" ] && { [ -d "$ROOT/shared/testvectors" ] && SHARED=$ROOT/shared || SHARED=$ROOT/../shared; }
if [ -d "$SHARED/testvectors" ]; then
    SHARED=$(cd "$SHARED" && pwd)
    CMAKE_ARGS+=("-DPFGM_SHARED_DIR=$SHARED")
    export PFGM_DDPMPP_FIXTURE=$SHARED/testvectors/ddpmpp_tiny_reference.h5
    export PFGM_TEST_VECTORS=$SHARED/testvectors/pfgm_vectors.h5
    say "test vectors: $SHARED/testvectors"
else
    say "test vectors: none found (set PFGM_SHARED_DIR): the fixture tests will fail"
fi

# ---- configure and build --------------------------------------------------------------------
say ""
if limited configure 120 "$LOGS/configure.log" cmake -S "$ROOT" -B "$BUILD" "${CMAKE_ARGS[@]}"; then
    grep -E "pfgm: CUDA backend|Found (MPI|HDF5|CUDAToolkit|NCCL)" "$LOGS/configure.log" | sed 's/^/  /' | tee -a "$REPORT"
    # everything: gpu-labelled tests live in more than one folder, and a full build is what CI does
    if limited build 300 "$LOGS/build.log" cmake --build "$BUILD" -j "$(nproc)"; then
        say "  warnings: $(grep -c -i 'warning' "$LOGS/build.log")"
        grep -i -A3 'warning' "$LOGS/build.log" | head -40 | sed 's/^/  /' | tee -a "$REPORT"
    else
        FAILED+=(build)
        tail -40 "$LOGS/build.log" | sed 's/^/  /' | tee -a "$REPORT"
    fi
else
    FAILED+=(configure)
    tail -40 "$LOGS/configure.log" | sed 's/^/  /' | tee -a "$REPORT"
fi

# ---- gpu tests ------------------------------------------------------------------------------------
if [ ${#FAILED[@]} -eq 0 ]; then
    say ""
    # -V: each test's own lines (the per-op errors) go to ctest.log, which comes back with the report
    limited "ctest -L gpu" 200 "$LOGS/ctest.log" ctest --test-dir "$BUILD" -L gpu -V --timeout 150
    rc=$?
    grep -E "^ *[0-9]+/[0-9]+ Test +#|tests passed|tests failed|\(Failed\)|Not Run|Timeout|SKIPPED" "$LOGS/ctest.log" |
        sed 's/^/  /' | tee -a "$REPORT"
    if [ $rc -ne 0 ]; then
        FAILED+=(gpu-tests)
        say "  --- failures (from ctest.log) ---"
        grep -E "FAILED|fail|Error|error:" "$LOGS/ctest.log" | head -60 | sed 's/^/  /' | tee -a "$REPORT"
    elif grep -q "Skipped" "$LOGS/ctest.log" && command -v nvidia-smi >/dev/null; then
        say "  note: gpu tests were skipped on a GPU machine: see SKIPPED lines above"
    fi
fi

# ---- benchmark -----------------------------------------------------------------------------------
if [ ${#FAILED[@]} -eq 0 ] || [[ " ${FAILED[*]} " == *" gpu-tests "* ]]; then
    say ""
    say "benchmark: bench_train_step --config configs/cifar10_ddpmpp.yaml --backend cuda (4096 charges, 128 perturbed points)"
    if limited bench 150 "$LOGS/bench.log" "$BUILD/tests/bench_train_step" --config configs/cifar10_ddpmpp.yaml \
        --backend cuda --steps 10 --warmup 3 \
        --set training.batch_size=4096 --set training.small_batch_size=128; then
        sed 's/^/  /' "$LOGS/bench.log" | tee -a "$REPORT"
    else
        FAILED+=(benchmark)
        tail -30 "$LOGS/bench.log" | sed 's/^/  /' | tee -a "$REPORT"
    fi
fi

say ""
say "total $(($(date +%s) - START)) s of the ${BUDGET} s budget"
if [ ${#FAILED[@]} -eq 0 ]; then
    say "RESULT: ok (build, gpu tests, benchmark)"
    exit 0
fi
say "RESULT: FAILED: ${FAILED[*]}"
exit 1
