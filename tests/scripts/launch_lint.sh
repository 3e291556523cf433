#!/usr/bin/env bash
# Static checks of the launch and cluster scripts: `bash -n` (syntax) on every one, and the
# ShellCheck linter (warnings and errors, following sourced files), which reports SKIPPED
# when it is not installed (Debian package shellcheck).
#   launch_lint.sh syntax | shellcheck
set -u
cd "${PFGM_SOURCE_DIR:-$(dirname "$0")/../..}" || exit 1
files=(launch/*.sh cluster/slurm/*.sbatch cluster/slurm/site.env.example tests/scripts/launch_*.sh tests/scripts/slurm_real.sh)
case ${1:-syntax} in
  syntax)
    bad=0
    for f in "${files[@]}"; do
      bash -n "$f" || { echo "FAIL: bash -n $f"; bad=$((bad + 1)); }
    done
    [ $bad -eq 0 ] || exit 1
    echo "ok: bash -n on ${#files[@]} scripts"
    ;;
  shellcheck)
    if ! command -v shellcheck > /dev/null; then
      echo "SKIPPED: shellcheck is not installed (apt-get install shellcheck)"
      exit 77
    fi
    shellcheck -x --severity=warning --shell=bash "${files[@]}" || { echo "FAIL: shellcheck"; exit 1; }
    echo "ok: shellcheck on ${#files[@]} scripts"
    ;;
  *) echo "usage: $0 syntax|shellcheck" >&2; exit 2 ;;
esac
