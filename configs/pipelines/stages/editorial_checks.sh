#!/bin/sh
# editorial-checks: every parsed article needs a title and at least 30 words.
# Writes work/editorial_report.txt; exits 1 listing the articles that fail.
set -eu
work="${TROUPE_RUN_DIR:?}/work"
report="$work/editorial_report.txt"
bad=$(grep -E '"title": ""|"words": ([0-9]|[12][0-9]),' "$work/parsed.jsonl" | sed 's/.*"id": "\([^"]*\)".*/\1/' || true)
total=$(wc -l < "$work/parsed.jsonl")
if [ -n "$bad" ]; then
  echo "FAILED: $(echo "$bad" | wc -l) of $total articles: $bad" | tee "$report" >&2
  exit 1
fi
echo "passed: $total articles" | tee "$report"
