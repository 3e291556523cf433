#!/bin/bash
# Fails when a PTX file holds a single-precision fused multiply-add (fma.rn.f32): nvcc contracted
# a product and a sum that the kernels promise to round separately (tests/gpu_harness.cmake).
# Argument: the PTX files, ';'-separated as CMake's $<TARGET_OBJECTS> gives them.
set -u
IFS=';' read -r -a files <<< "${1:?usage: no_fma_in_ptx.sh 'a.ptx;b.ptx'}"
bad=0
for f in "${files[@]}"; do
    [ -s "$f" ] || { echo "FAIL: $f: missing or empty"; bad=1; continue; }
    n=$(grep -c -E 'fma\.rn\.f32' "$f")
    echo "$(basename "$f"): $n fma instructions"
    [ "$n" -eq 0 ] || { grep -n -m 5 -E 'fma\.rn\.f32' "$f"; bad=1; }
done
[ "$bad" -eq 0 ] && echo "ok: no contracted multiply-add in ${#files[@]} files"
exit "$bad"
