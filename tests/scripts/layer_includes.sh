#!/usr/bin/env bash
# Layer check: every #include in include/pfgm/*.h and src/<layer>/ must point at its own layer
# or a layer below it, in the order written in docs/architecture.md ("apps -> train -> ...",
# read from there, so the document and this check cannot drift apart). An include that goes
# upward or sideways fails the test unless the allow-list below names it with its reason
# (each entry is also listed in docs/architecture.md). Library headers belong to one layer:
# HDF5, libyaml, libpng and libjpeg to io, MPI and NCCL to comm, CUDA to the CUDA backend (and the NCCL
# communicator); public headers include none of them.
#   layer_includes.sh            exits 0 when clean, 1 listing every offending include
set -u
cd "${PFGM_SOURCE_DIR:-$(dirname "$0")/../..}" || exit 1

# Documented exceptions: "including file|included path|reason".
allow=(
)

# The layer of each public header: the src/ directory that implements it.
declare -A header_layer=(
  [status.h]=util [log.h]=util [rng.h]=util [preempt.h]=util [run_lock.h]=util
  [backend.h]=backend [ops.h]=backend
  [comm.h]=comm
  [field.h]=core [loss.h]=core [ode.h]=core [perturb.h]=core [prior.h]=core
  [nn.h]=nn [ddpmpp.h]=nn [optim.h]=nn
  [config.h]=io [checkpoint.h]=io [dataset.h]=io [image.h]=io [prep.h]=io [samples.h]=io
  [params_h5.h]=io
  [progress.h]=train [sampler.h]=train [step.h]=train [grad_sync.h]=train [trainer.h]=train
)

# Layer ranks from the diagram "apps -> train -> { core, nn, comm } -> backend -> util":
# segments separated by "->", a braced group is one rank of sibling layers (sideways
# includes between siblings are not allowed either).
order=$(sed -n 's/^ *\(apps *->.*\)$/\1/p' docs/architecture.md | head -n 1 | tr -s ' ')
if [ -z "$order" ]; then
  echo "FAIL: docs/architecture.md has no layer order line starting 'apps ->'"
  exit 1
fi
declare -A rank=()
IFS='>' read -r -a segs <<< "${order//->/>}"
n=${#segs[@]}
for ((i = 0; i < n; ++i)); do
  seg=${segs[i]//[\{\} ]/}
  IFS=',' read -r -a names <<< "$seg"
  for name in "${names[@]}"; do rank[$name]=$((n - 1 - i)); done
done
for l in util backend comm core nn io train apps; do
  [ -n "${rank[$l]:-}" ] || { echo "FAIL: layer '$l' is missing from the order '$order'"; exit 1; }
done

bad=0
fail() { echo "FAIL: $*"; bad=$((bad + 1)); }

allowed() { # file include -> 0 when allow-listed
  local e
  for e in "${allow[@]}"; do
    [ "${e%%|*}" = "$1" ] || continue
    e=${e#*|}
    [ "${e%%|*}" = "$2" ] && return 0
  done
  return 1
}

layer_of_file() { # path of a checked file -> its layer
  case $1 in
    include/pfgm/*) echo "${header_layer[${1#include/pfgm/}]:-?}" ;;
    src/*) local r=${1#src/}; echo "${r%%/*}" ;;
  esac
}

layer_of_include() { # including file, quoted include -> layer of the included header
  case $2 in
    pfgm/*) echo "${header_layer[${2#pfgm/}]:-?}" ;;
    */*) echo "${2%%/*}" ;;
    *) [ -f "$(dirname "$1")/$2" ] && layer_of_file "$1" || echo "?" ;;
  esac
}

files=(include/pfgm/*.h)
while IFS= read -r f; do files+=("$f"); done < <(find src -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) | sort)

checked=0
for f in "${files[@]}"; do
  from=$(layer_of_file "$f")
  if [ "$from" = "?" ]; then
    fail "$f: public header with no layer ---> HINT: add it to header_layer in $0"
    continue
  fi
  while IFS=: read -r line text; do
    checked=$((checked + 1))
    if [[ $text =~ \#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]]; then
      inc=${BASH_REMATCH[1]}
      to=$(layer_of_include "$f" "$inc")
      if [ "$to" = "?" ] || [ -z "${rank[$to]:-}" ]; then
        allowed "$f" "$inc" || fail "$f:$line: \"$inc\" belongs to no layer"
        continue
      fi
      [ "$to" = "$from" ] && continue
      if [ "${rank[$to]}" -lt "${rank[$from]}" ]; then continue; fi
      dir="a sideways"
      [ "${rank[$to]}" -gt "${rank[$from]}" ] && dir="an upward"
      allowed "$f" "$inc" ||
        fail "$f:$line: $from -> $to ($inc) is $dir include ---> HINT: move the code up, pass plain values down, or add a documented exception to the allow-list of $0 and to docs/architecture.md"
    elif [[ $text =~ \#[[:space:]]*include[[:space:]]*\<([^\>]+)\> ]]; then
      inc=${BASH_REMATCH[1]}
      case $inc in
        hdf5.h | H5*.h | yaml.h | png.h | jpeglib.h | jerror.h) own="src/io/" ;;
        mpi.h) own="src/comm/" ;;
        nccl.h) own="src/comm/comm_nccl.c" ;;
        cuda*.h | cublas*.h | curand*.h) own="src/backend/cuda/ src/comm/comm_nccl.c" ;;
        *) continue ;;
      esac
      ok=0
      for o in $own; do [[ $f == "$o"* ]] && ok=1; done
      [ $ok -eq 1 ] || allowed "$f" "$inc" || fail "$f:$line: <$inc> belongs to $own only"
    fi
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include' "$f")
done

if [ $bad -ne 0 ]; then
  echo "FAIL: $bad include(s) against the layer order '$order' (docs/architecture.md)"
  exit 1
fi
echo "ok: $checked includes in ${#files[@]} files follow '$order' (${#allow[@]} documented exceptions)"
