#!/usr/bin/env bash
# pfgm-train on a dataset file many times larger than the reader cache the test sets
# (docs/data-format.md "Streaming"): configs/tiny.yaml (8x8 grayscale) trains 20 steps on a
# 2,000-image file and on a 600,000-image file (38 MB of pixels) with data.cache_mb 4. The
# peak resident memory of the two runs (GNU time's %M) may differ by at most 12 MiB, a
# third of the larger file: the reader streams blocks and never holds the file (the
# whole-shard reader it replaced grew by the file's size). The start-up table must state
# the reader's cache per rank. Needs PFGM_TRAIN and PFGM_PREP (tests/data_stream.cmake).
set -u
TIME=/usr/bin/time
if [ ! -x "$TIME" ]; then echo "SKIPPED: $TIME (GNU time) not installed"; exit 77; fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pfgm-stream-rss-XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# IDX images [n, 8, 8] of pseudo-random bytes (a fixed LCG, so the run is reproducible)
make_idx() {
  python3 - "$1" "$2" <<'PY' || { echo "FAIL: cannot write $1"; exit 1; }
import struct, sys
path, n = sys.argv[1], int(sys.argv[2])
x, out = 12345, bytearray(n * 64)
for i in range(0, len(out), 4096):
    x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
    seed = x.to_bytes(8, "little") * 512
    out[i:i + 4096] = seed[:len(out) - i] if len(out) - i < 4096 else seed
for i in range(0, len(out), 61):  # vary the repeated pattern per image
    out[i] = (i // 61) & 0xff
with open(path, "wb") as f:
    f.write(struct.pack(">IIII", 0x803, n, 8, 8))
    f.write(out)
PY
}

peak_kib() { # peak_kib NAME N: prepares N images, trains, prints the peak RSS in KiB
  make_idx "$WORK/$1.idx" "$2"
  "$PFGM_PREP" idx --images "$WORK/$1.idx" --out "$WORK/$1.h5" --quiet || { echo "FAIL: pfgm-prep $1"; exit 1; }
  rm -f "$WORK/$1.idx"
  "$TIME" -f "%M" -o "$WORK/$1.rss" "$PFGM_TRAIN" --config configs/tiny.yaml --set "data.path=$WORK/$1.h5" \
    --set data.cache_mb=4 --set data.shuffle_window=8 --set training.n_iters=20 \
    --set training.snapshot_freq=20 --set training.snapshot_freq_for_preemption=20 --set training.log_freq=10 \
    --run-dir "$WORK/run_$1" > "$WORK/$1.log" 2>&1 || { echo "FAIL: pfgm-train on $1:"; cat "$WORK/$1.log"; exit 1; }
  if ! grep -Eq "reader +cache [0-9.]+ MiB per rank" "$WORK/$1.log"; then
    echo "FAIL: the start-up table does not state the reader's cache per rank:"; cat "$WORK/$1.log"; exit 1
  fi
  tail -n 1 "$WORK/$1.rss"
}

small=$(peak_kib small 2000) || { echo "$small"; exit 1; }
big=$(peak_kib big 600000) || { echo "$big"; exit 1; }
file_kib=$(( $(stat -c %s "$WORK/big.h5") / 1024 ))
grep -E "reader +cache" "$WORK/big.log"
echo "peak RSS: ${small} KiB (2,000 images), ${big} KiB (600,000 images, file ${file_kib} KiB), cache 4 MiB"
growth=$(( big - small ))
if [ "$growth" -gt $(( 12 * 1024 )) ]; then
  echo "FAIL: peak RSS grew by ${growth} KiB with the larger file (bound 12288 KiB)"; exit 1
fi
if [ $(( 12 * 1024 * 3 )) -gt "$file_kib" ]; then
  echo "FAIL: the large file (${file_kib} KiB) is not 3 times the bound"; exit 1
fi
echo "ok: peak RSS grew by ${growth} KiB (bound 12288 KiB, a third of the file or less)"
