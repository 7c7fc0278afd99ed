#!/usr/bin/env bash
# Fuzzes the pipeline parser with libFuzzer (Debian's clang; the runtime is
# libclang_rt.fuzzer from libclang-rt-14-dev, or libfuzzer-14-dev).
#   scripts/fuzz-pipeline.sh [SECONDS] [JOBS]   (default 600 s, 1 job)
# Builds build-fuzz/pipeline_fuzzer with ASan, fuzzes starting from
# tests/fuzz/corpus/pipeline (new inputs land in build-fuzz/corpus), and puts
# crash inputs in build-fuzz/crashes/; copy those to tests/fuzz/crashes/ once
# fixed so that the ctest pipeline_fuzz_corpus_replay keeps replaying them.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
jobs=${2:-1}
out=build-fuzz
mkdir -p "$out/corpus" "$out/crashes"
CXX=${CXX:-clang++}
command -v "$CXX" >/dev/null || { echo "fuzz-pipeline: $CXX not found (scripts/install-deps.sh --fuzz)" >&2; exit 1; }
if [ ! -x "$out/pipeline_fuzzer" ] || [ -n "$(find runtime messages actors tests/fuzz -newer "$out/pipeline_fuzzer" -name '*.[ch]pp' | head -1)" ]; then
  echo "fuzz-pipeline: building $out/pipeline_fuzzer"
  "$CXX" -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I. tests/fuzz/pipeline_fuzz.cpp runtime/pipeline.cpp runtime/template.cpp runtime/duration.cpp \
    actors/retry_policy.cpp messages/status.cpp messages/errors.cpp \
    -lyaml-cpp -lcaf_core -lcrypto -o "$out/pipeline_fuzzer"
fi
cp -n tests/fuzz/corpus/pipeline/* "$out/corpus/" 2>/dev/null || true
parallel=()
[ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")  # each job logs to fuzz-N.log
exec "$out/pipeline_fuzzer" "$out/corpus" tests/fuzz/crashes \
  -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
  -print_final_stats=1 -artifact_prefix="$out/crashes/" "${parallel[@]}"
