#!/usr/bin/env bash
# Installs troupe's build and test dependencies from Debian 12 packages.
# Idempotent: packages already present are skipped, so a second run is quick.
# Needs root (or sudo) for apt-get; nothing is downloaded outside apt.
#   scripts/install-deps.sh          what make run / make test need
#   scripts/install-deps.sh --fuzz   also clang and its libFuzzer runtime
#                                    (scripts/fuzz-pipeline.sh)
#   scripts/install-deps.sh --bench  also Redis, Celery and Dask (bench/compare)
set -euo pipefail

packages=(
  build-essential cmake make pkg-config ccache
  libcaf-dev libssl-dev           # actors (CAF 0.17)
  libyaml-cpp-dev                 # pipeline files
  nlohmann-json3-dev              # metadata.json, resource_trace.jsonl
  libcli11-dev                    # the troupe CLI
  libhwloc-dev                    # host topology
  libsqlite3-dev                  # the embedded store
  libpqxx-dev postgresql          # the PostgreSQL store; the server runs the pg tests
  libcurl4-openssl-dev            # HTTP stages; the CLI's client of the coordinator's API
  libboost-dev                    # Boost.Beast/Asio: the coordinator's HTTP API server
  libcpp-httplib-dev              # the tests' independent HTTP client
  libspdlog-dev                   # the coordinator's log
  curl prometheus                 # docs/api.md's examples run by a test; promtool checks /metrics
  chromium                        # the browser strategy (headless)
  libgtest-dev libgmock-dev       # tests
  libbenchmark-dev                # bench/
  python3 procps                  # example stages; ps/pgrep used by tests
  jq                              # the README's examples read metadata.json with it
)
if [ "${1:-}" = "--fuzz" ]; then
  packages+=(clang libclang-rt-14-dev)  # clang -fsanitize=fuzzer (libFuzzer's runtime)
fi
if [ "${1:-}" = "--bench" ]; then
  # bench/compare: the systems troupe is measured beside (Debian's python3)
  packages+=(redis-server redis-tools python3-celery python3-redis python3-distributed)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
