#!/usr/bin/env bash
# Side-by-side figures for docs/benchmarks.md, each against a baseline taken
# in the same run (machines are noisy; compare ratios, not absolutes).
#   bench/run_benchmarks.sh [BUILD_DIR] [REPEATS]
# 1. per-stage overhead: `troupe run` of 200 stages of `true` vs the same 200
#    commands from a shell loop;
# 2. sampler CPU: troupe's own CPU on a 5 s stage of 50 processes, sampled at
#    10 Hz vs not sampled; plus the cost of one snapshot (Google Benchmark);
# 3. the store: persisted transitions/s on SQLite and PostgreSQL, one
#    transaction each vs group commit; and 200 stages with the store vs --no-db;
# 4. bench/micro: actor round trip, store group commit, pipeline parse, event
#    JSON, metadata.json rendering (Google Benchmark).
# `make bench` runs this (60 s on the 2-core VM); bench/compare is the side-by-side run.
set -euo pipefail
build=${1:-build}
repeats=${2:-5}
troupe="$(cd "$build" && pwd)/troupe"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# -- 1. 200 stages of `true` ---------------------------------------------------
{
  echo "name: bench-200"
  echo "stages:"
  for i in $(seq 200); do printf '  - name: s%03d\n    run: ["true"]\n' "$i"; done
} > "$work/p200.yaml"

shell_ms=(); troupe_ms=(); troupe_nosample_ms=(); troupe_nodb_ms=(); troupe_noshim_ms=()
for r in $(seq "$repeats"); do
  t0=$(now_ns); sh -c 'for i in $(seq 200); do /bin/true; done'; t1=$(now_ns)
  shell_ms+=($(( (t1 - t0) / 1000000 )))
  t0=$(now_ns); "$troupe" run "$work/p200.yaml" -o "$work/out" >/dev/null; t1=$(now_ns)
  troupe_ms+=($(( (t1 - t0) / 1000000 )))
  t0=$(now_ns); "$troupe" run "$work/p200.yaml" -o "$work/out" --sample-interval 0 >/dev/null; t1=$(now_ns)
  troupe_nosample_ms+=($(( (t1 - t0) / 1000000 )))
  t0=$(now_ns); "$troupe" run "$work/p200.yaml" -o "$work/out" --no-db >/dev/null; t1=$(now_ns)
  troupe_nodb_ms+=($(( (t1 - t0) / 1000000 )))
  # Commands started straight from troupe, not through troupe-exec (whose
  # cost this measures; their peak memory would then be troupe's own).
  t0=$(now_ns); TROUPE_EXEC_SHIM=/nonexistent "$troupe" run "$work/p200.yaml" -o "$work/out" >/dev/null; t1=$(now_ns)
  troupe_noshim_ms+=($(( (t1 - t0) / 1000000 )))
done
ns=$(printf '%s\n' "${troupe_noshim_ms[@]}" | median)
nd=$(printf '%s\n' "${troupe_nodb_ms[@]}" | median)
s=$(printf '%s\n' "${shell_ms[@]}" | median)
t=$(printf '%s\n' "${troupe_ms[@]}" | median)
tn=$(printf '%s\n' "${troupe_nosample_ms[@]}" | median)
echo "== 200 stages of true (median of $repeats) =="
echo "shell loop:                      ${s} ms   (${shell_ms[*]})"
echo "troupe run (default options):    ${t} ms   (${troupe_ms[*]})"
echo "troupe run --sample-interval 0:  ${tn} ms   (${troupe_nosample_ms[*]})"
echo "troupe run --no-db:              ${nd} ms   (${troupe_nodb_ms[*]})"
echo "troupe run without troupe-exec:  ${ns} ms   (${troupe_noshim_ms[*]})"
awk -v s="$s" -v t="$t" -v tn="$tn" -v nd="$nd" 'BEGIN {
  printf "ratio troupe/shell: %.1fx; per-stage overhead: %.2f ms (%.2f ms without periodic sampling)\n",
         t / s, (t - s) / 200, (tn - s) / 200
  printf "store on vs --no-db: %.2fx (%.2f ms per stage for SQLite)\n", t / nd, (t - nd) / 200 }'
awk -v t="$t" -v ns="$ns" 'BEGIN {
  printf "troupe-exec: %.2f ms per stage (%.2fx)\n", (t - ns) / 200, t / ns }'

# -- 2. the sampler at 10 Hz on 50 processes -------------------------------------
cat > "$work/p50.yaml" <<'YAML'
name: bench-50
stages:
  - name: fifty
    shell: "for i in $(seq 49); do sleep 5 & done; wait"
YAML
cpu_of() {  # troupe's user+sys CPU seconds (children: the stage's sleeps, ~0)
  local out
  out=$( { TIMEFORMAT='%U %S'; time "$troupe" run "$work/p50.yaml" -o "$work/out" "$@" >/dev/null; } 2>&1 )
  awk '{print $1 + $2}' <<<"$out"
}
on=(); off=()
for r in $(seq 3); do
  on+=($(cpu_of --sample-interval 100ms))
  off+=($(cpu_of --sample-interval 0))
done
con=$(printf '%s\n' "${on[@]}" | median)
coff=$(printf '%s\n' "${off[@]}" | median)
echo "== 5 s stage of 50 processes (median of 3) =="
echo "CPU, sampled at 10 Hz:  ${con} s   (${on[*]})"
echo "CPU, no periodic samples: ${coff} s   (${off[*]})"
awk -v a="$con" -v b="$coff" 'BEGIN {
  printf "sampler cost at 10 Hz: %.3f s CPU over 5 s = %.2f %% of one core\n", a - b, (a - b) / 5 * 100 }'

if [ -x "$build/bench/sampler_bench" ]; then
  echo "== one snapshot with a 50-process tree (Google Benchmark) =="
  "$build/bench/sampler_bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true 2>/dev/null
fi

# -- 3. the store ------------------------------------------------------------------
if [ -x "$build/bench/store_bench" ]; then
  echo "== persisted transitions (store_bench) =="
  "$build/bench/store_bench" "sqlite:$work/bench.db" 2000
  pgdir=/tmp/troupe-pgbench-$$
  if "$(dirname "$0")/../tests/support/pg_server.sh" start "$pgdir" 55499 >/dev/null; then
    "$build/bench/store_bench" "$(cat "$pgdir/url")" 2000 || true
    "$(dirname "$0")/../tests/support/pg_server.sh" stop "$pgdir"
  fi
fi

# -- 4. the hot paths one by one (bench/micro) ---------------------------------------
if [ -x "$build/bench/micro_bench" ]; then
  echo "== hot paths (Google Benchmark, bench/micro) =="
  "$build/bench/micro_bench" --benchmark_min_time=0.2 2>/dev/null
fi
