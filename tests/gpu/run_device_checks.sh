#!/usr/bin/env bash
# Device checks of the CUDA backend, for a machine with an NVIDIA GPU (issue "CUDA backend and
# NCCL"): reports the machine and which libraries pfgm needs are present, configures and builds
# pfgm (Release, -DPFGM_CUDA=ON) with the gpu tests and the training-step benchmark, runs
# `ctest -L gpu`, then tests/bench/bench_train_step on configs/cifar10_ddpmpp.yaml at the
# authors' batch sizes (4096 charges, 128 perturbed points): images/s, the share of time in
# the field targets, and MFU against the card's measured fp32/TF32/bf16 GEMM rates. Everything
# goes to a report file: $OUT/device_report.txt when $OUT is set, else build/device_report.txt.
# Every phase runs under `timeout` with its own cap, and the caps add up to no more than one
# overall budget (PFGM_CHECK_BUDGET_S, default 420 s: with a 1-2 minute cold start the check
# takes about 9 of the device's 15 minutes and leaves room for one more targeted run). Exit
# status 0 when the build, every gpu test and the benchmark succeeded, 1 otherwise (the report
# says which). MPI-launched gpu tests report SKIPPED, with the reason, where no launcher exists.
#
# Usage (from anywhere; it works in the repository that holds it):
#   tests/gpu/run_device_checks.sh                 the checks
#   tests/gpu/run_device_checks.sh --plan          the plan only, on any machine: the budget and
#       phase caps (exit 1 when the caps exceed the budget), which libraries are found where,
#       the MPI launcher, the cmake arguments and the tests' run environment; builds nothing
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
#                      Its usr/ goes first on CMAKE_PREFIX_PATH, its library folders on the
#                      linker's -rpath-link and on LD_LIBRARY_PATH of the tests and the
#                      benchmark only (cmake, the linker, git keep the system's libraries), its
#                      pkg-config files (paths rewritten into the folder) on PKG_CONFIG_PATH,
#                      MPI/HDF5 are pointed at it when the system has none (header and
#                      development link, not just a runtime libX.so.N), and its
#                      usr/bin/mpiexec.openmpi becomes the tests' MPI launcher
#   PFGM_DEPS_ONLY=1   take MPI and HDF5 from PFGM_DEPS_PREFIX even where the system has them
#   PFGM_SHARED_DIR    folder holding testvectors/ (default: <repo>/shared, else <repo>/../shared);
#                      sets PFGM_DDPMPP_FIXTURE and PFGM_TEST_VECTORS for the tests
#   PFGM_BUILD_DIR     build folder (default <repo>/build-device)
#   PFGM_CUDA_ARCH     CMAKE_CUDA_ARCHITECTURES (default 90: H100/H200)
#   PFGM_CHECK_BUDGET_S  overall time budget in seconds (default 420)
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
         pkgconf pkgconf-bin libpkgconf3 openmpi-bin openmpi-common"
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
# The plan: one overall budget and a cap per phase whose sum stays inside it, so that on the
# device (15 minutes in all, a cold start costing 1-2 of them) the whole check takes about
# 7 minutes of the command's time and leaves room for one more targeted run.
BUDGET=${PFGM_CHECK_BUDGET_S:-420}
PHASES="deps:30 configure:45 build:180 ctest:105 bench:60"
PLAN_SUM=0
for ph in $PHASES; do PLAN_SUM=$((PLAN_SUM + ${ph#*:})); done
cap() { local ph; for ph in $PHASES; do [ "${ph%%:*}" = "$1" ] && echo "${ph#*:}"; done; }
START=$(date +%s)
BUILD=${PFGM_BUILD_DIR:-$ROOT/build-device}
PLAN_ONLY=0
[ "${1:-}" = "--plan" ] && PLAN_ONLY=1
if [ "$PLAN_ONLY" = 1 ]; then REPORT=/dev/stdout; LOGS=
elif [ -n "${OUT:-}" ]; then REPORT=$OUT/device_report.txt; LOGS=$OUT; else REPORT=$ROOT/build/device_report.txt; LOGS=$BUILD/logs; fi
if [ "$PLAN_ONLY" = 0 ]; then mkdir -p "$(dirname "$REPORT")" "$LOGS" "$BUILD"; : > "$REPORT"; fi
FAILED=()

say() { if [ "$PLAN_ONLY" = 1 ]; then printf '%s\n' "$*"; else printf '%s\n' "$*" | tee -a "$REPORT"; fi; }
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
say "plan: budget $BUDGET s; phase caps $PHASES (sum $PLAN_SUM s)"
if [ "$PLAN_SUM" -gt "$BUDGET" ]; then
    say "RESULT: FAILED: the phase caps ($PLAN_SUM s) exceed the budget ($BUDGET s)"
    exit 1
fi
say "host $(hostname), $(uname -srm), $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
if command -v nvidia-smi >/dev/null; then
    say "gpu  $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_mode --format=csv,noheader 2>&1 | head -4 | tr '\n' ';')"
else
    say "gpu  nvidia-smi not found"
fi
say "nvcc $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo 'not found')"
say "cmake $(cmake --version 2>/dev/null | head -1 | awk '{print $3}')"

# ---- libraries -------------------------------------------------------------------------------
# A library counts as present when what the build needs is there: its header and its
# unversioned development link (libX.so), not merely a runtime libX.so.N that some other
# program pulled in.
P=${PFGM_DEPS_PREFIX:-}
if [ -n "$P" ]; then
    P=$(cd "$P" && pwd) || exit 1
    if ls "$P"/*.deb >/dev/null 2>&1; then
        if [ "$PLAN_ONLY" = 1 ]; then
            say "PFGM_DEPS_PREFIX holds $(ls "$P"/*.deb | wc -l) .deb files (unpacked by a real run)"
        else
            t0=$(date +%s)
            rm -rf "$BUILD/deps" && mkdir -p "$BUILD/deps"
            for f in "$P"/*.deb; do dpkg -x "$f" "$BUILD/deps" || say "cannot unpack $f"; done
            say "[deps] unpacked $(ls "$P"/*.deb | wc -l) packages of $P into $BUILD/deps in $(($(date +%s) - t0)) s"
            P=$BUILD/deps
        fi
    fi
fi
MULTI=x86_64-linux-gnu
CUDA_ROOT=$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")")
# has ROOT HEADER LIB...: HEADER under ROOT's include folders and one of the LIBs (development
# links, resolving to a file) under its library folders; ROOT "" is the system, where the CUDA
# toolkit's folders count too (NCCL may live there)
has() {
    local root=$1 header=$2 lib d found= extra_inc=() extra_lib=()
    shift 2
    [ -z "$root" ] && extra_inc=("$CUDA_ROOT/include") && extra_lib=("$CUDA_ROOT/lib" "$CUDA_ROOT/lib64")
    for d in "$root/usr/include" "$root/usr/include/$MULTI" "$root/usr/include/hdf5/serial" \
        "$root/usr/lib/$MULTI/openmpi/include" "$root/usr/include/$MULTI/openblas-pthread" "$root/usr/local/include" \
        "${extra_inc[@]}"; do
        [ -f "$d/$header" ] && { found=1; break; }
    done
    [ -n "$found" ] || return 1
    for lib in "$@"; do
        for d in "$root/usr/lib/$MULTI" "$root/usr/lib64" "$root/usr/lib" "$root/usr/local/lib" \
            "$root/usr/lib/$MULTI/openblas-pthread" "$root/usr/lib/$MULTI/openmpi/lib" "$root/usr/lib/$MULTI/hdf5/serial" \
            "${extra_lib[@]}"; do
            [ -e "$d/$lib" ] && return 0
        done
    done
    return 1
}
declare -A FOUND
say "libraries (header + development link; system first${P:+, then PFGM_DEPS_PREFIX=$P}):"
for spec in mpi:mpi.h:libmpi.so hdf5:hdf5.h:libhdf5.so,libhdf5_serial.so yaml:yaml.h:libyaml.so \
    jansson:jansson.h:libjansson.so cmocka:cmocka.h:libcmocka.so openblas:cblas.h:libopenblas.so \
    png:png.h:libpng.so zlib:zlib.h:libz.so nccl:nccl.h:libnccl.so; do
    IFS=: read -r name header libs <<< "$spec"
    IFS=, read -r -a liblist <<< "$libs"
    in_system= in_prefix=
    has "" "$header" "${liblist[@]}" && in_system=1
    [ -n "$P" ] && has "$P" "$header" "${liblist[@]}" && in_prefix=1
    if [ -n "$in_prefix" ] && { [ "${PFGM_DEPS_ONLY:-0}" = 1 ] || [ -z "$in_system" ]; }; then
        FOUND[$name]=prefix
    elif [ -n "$in_system" ]; then
        FOUND[$name]=system
    else
        FOUND[$name]=missing
    fi
    say "  $(printf '%-9s' "$name") ${FOUND[$name]}$([ "$name" = nccl ] && echo ' (optional: the NCCL communicator)')"
done
MISSING=$(for k in mpi hdf5 yaml jansson cmocka openblas png zlib; do [ "${FOUND[$k]}" = missing ] && printf '%s ' "$k"; done)
[ -n "$MISSING" ] && say "missing: $MISSING(set PFGM_DEPS_PREFIX to unpacked Debian packages, see the header of $0)"

# The MPI launcher: the plain name where MPI is installed; an unpacked Debian package has only
# the real name (mpiexec.openmpi; the plain one is an alternatives link its install script makes).
# The launcher comes from where the MPI library does.
MPIEXEC=
SYS_LAUNCHERS=("$(command -v mpiexec 2>/dev/null)" "$(command -v mpiexec.openmpi 2>/dev/null)")
PFX_LAUNCHERS=(${P:+"$P/usr/bin/mpiexec.openmpi" "$P/usr/bin/mpiexec"})
if [ "${FOUND[mpi]}" = prefix ]; then CANDS=("${PFX_LAUNCHERS[@]}"); else CANDS=("${SYS_LAUNCHERS[@]}"); fi
for cand in "${CANDS[@]}"; do
    [ -n "$cand" ] && [ -x "$cand" ] && { MPIEXEC=$cand; break; }
done
say "mpi launcher: ${MPIEXEC:-none (the MPI-launched gpu tests report SKIPPED)}"

CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=Release -DPFGM_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=${PFGM_CUDA_ARCH:-90}")
[ -n "$MPIEXEC" ] && CMAKE_ARGS+=("-DMPIEXEC_EXECUTABLE=$MPIEXEC")
# RUN_ENV: the environment of the steps that run pfgm (tests, benchmark) and nothing else, so
# that cmake, the linker, git and nvidia-smi keep the system's libraries.
RUN_ENV=()
if [ -n "$P" ]; then
    export CMAKE_PREFIX_PATH="$P/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
    LIBDIRS="$P/usr/lib/$MULTI:$P/lib/$MULTI:$P/usr/lib/$MULTI/openblas-pthread:$P/usr/lib/$MULTI/hdf5/serial:$P/usr/lib/$MULTI/openmpi/lib"
    RUN_ENV=("LD_LIBRARY_PATH=$LIBDIRS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
    # Open MPI relocated into the prefix finds its plugins and help files through OPAL_PREFIX
    # (a system Open MPI must not be pointed there)
    [ "${FOUND[mpi]}" = prefix ] && RUN_ENV+=("OPAL_PREFIX=$P/usr")
    # the linker finds the prefix libraries' own dependencies through -rpath-link, not the
    # loader path
    CMAKE_ARGS+=("-DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath-link,$LIBDIRS" "-DPFGM_TEST_RUN_ENV=${RUN_ENV[*]}")
    # the packages' pkg-config files name /usr: copies with the paths moved into the prefix
    PC=$BUILD/deps-pkgconfig
    if [ "$PLAN_ONLY" = 0 ]; then
        rm -rf "$PC" && mkdir -p "$PC"
        for d in "$P/usr/lib/$MULTI/pkgconfig" "$P/usr/lib/$MULTI/openblas-pthread/pkgconfig" "$P/usr/share/pkgconfig"; do
            for f in "$d"/*.pc; do
                [ -e "$f" ] && sed -e "s#/usr/#$P/usr/#g" -e "s#=/usr\$#=$P/usr#" "$f" > "$PC/$(basename "$f")"
            done
        done
    fi
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
if [ "$PLAN_ONLY" = 1 ]; then
    say "cmake arguments: ${CMAKE_ARGS[*]}"
    say "run environment of the tests and the benchmark: ${RUN_ENV[*]:-(unchanged)}"
    say "LD_LIBRARY_PATH of cmake, the build and the other tools: ${LD_LIBRARY_PATH:-(unset)}"
    exit 0
fi

# test vectors: a carried copy inside the repository, else the one beside it
SHARED=${PFGM_SHARED_DIR:-}
[ -z "$SHARED" ] && { [ -d "$ROOT/shared/testvectors" ] && SHARED=$ROOT/shared || SHARED=$ROOT/../shared; }
if [ -d "$SHARED/testvectors" ]; then
    SHARED=$(cd "$SHARED" && pwd)
    export PFGM_DDPMPP_FIXTURE=$SHARED/testvectors/ddpmpp_tiny_reference.h5
    export PFGM_TEST_VECTORS=$SHARED/testvectors/pfgm_vectors.h5
    say "test vectors: $SHARED/testvectors"
else
    say "test vectors: none found (set PFGM_SHARED_DIR): the fixture tests will fail"
fi

# ---- configure and build --------------------------------------------------------------------
say ""
if limited configure "$(cap configure)" "$LOGS/configure.log" cmake -S "$ROOT" -B "$BUILD" "${CMAKE_ARGS[@]}"; then
    grep -E "pfgm: CUDA backend|Found (MPI|HDF5|CUDAToolkit|NCCL)" "$LOGS/configure.log" | sed 's/^/  /' | tee -a "$REPORT"
    # everything: gpu-labelled tests live in more than one folder, and a full build is what CI does
    if limited build "$(cap build)" "$LOGS/build.log" cmake --build "$BUILD" -j "$(nproc)"; then
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
    limited "ctest -L gpu" "$(cap ctest)" "$LOGS/ctest.log" ctest --test-dir "$BUILD" -L gpu -V --timeout 90
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
    if limited bench "$(cap bench)" "$LOGS/bench.log" env "${RUN_ENV[@]}" "$BUILD/tests/bench_train_step" \
        --config configs/cifar10_ddpmpp.yaml --backend cuda --steps 10 --warmup 3 \
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
