#!/usr/bin/env bash
# The GPU measurements of README "Measured on a GPU", on a lent CUDA machine:
#
#   source .cuda-bundle/setup.sh; bash scripts/gpu_checks.sh [ner] [base] [tc] [pytest] [compile]
#
# (no names: all five, in that order). From the H100 runs in README (fit plus about 35 s of start
# per pipeline), ner needs about 4 min, base 3, tc and pytest 2 each: a device call of at most
# 10 min holds ner and base, a second one the rest. Each check runs under its own time limit
# (seconds, GPU_CHECK_LIMIT, default 360), so one that hangs cannot eat the others' device time, and
# writes into ${OUT:-experiments/gpu_checks}/<name>/: the speed benchmark's speed.json and
# speed.md, and log.txt. A check that fails or runs out of time is reported; the rest still run.
set -u
out=${OUT:-experiments/gpu_checks}
limit=${GPU_CHECK_LIMIT:-360}
python=${PYTHON:-python3}
known=(ner base tc pytest compile)
checks=("$@")
[ ${#checks[@]} -eq 0 ] && checks=("${known[@]}")
is_known() { local name; for name in "${known[@]}"; do [ "$name" = "$1" ] && return 0; done; return 1; }
for check in "${checks[@]}"; do   # a typo fails here, before any check spends device time
    is_known "$check" || { echo "gpu_checks: unknown check '$check' (${known[*]})" >&2; exit 2; }
done

mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
[ -d data/ncbi_ner ] || "$python" scripts/prepare_data.py > "$out/prepare_data.log" 2>&1

status=0
for check in "${checks[@]}"; do
    dir="$out/$check"
    mkdir -p "$dir"
    case $check in
        ner) command=("$python" scripts/benchmark_speed.py --epochs 5 --out-dir "$dir") ;;
        base) command=("$python" scripts/benchmark_speed.py --encoder base-random --epochs 2 --out-dir "$dir") ;;
        tc) command=("$python" scripts/benchmark_speed.py --task tc --epochs 2 --out-dir "$dir") ;;
        pytest) command=("$python" -m pytest -m gpu -q) ;;
        compile) command=("$python" scripts/benchmark_speed.py --epochs 5 --pipelines bertlab --out-dir "$dir"
                          --variant compile model.compile=true
                          --variant graphs model.compile=true model.compile_mode=reduce-overhead) ;;
    esac
    start=$SECONDS
    timeout "$limit" "${command[@]}" > "$dir/log.txt" 2>&1
    rc=$?
    echo "$check: exit $rc after $((SECONDS - start)) s (limit $limit s)" | tee -a "$out/summary.txt"
    [ $rc -eq 0 ] || status=1
done
exit $status
