#!/bin/sh
# normalize: one text file per article, whitespace collapsed, in batches of
# $BATCH (default 10) so that progress shows on stdout.
set -eu
work="${TROUPE_RUN_DIR:?}/work"
mkdir -p "$work/normalized"
batch="${BATCH:-10}"
n=0
for f in "$work"/raw/*.json; do
  id=$(basename "$f" .json)
  # one field per line, runs of spaces squeezed
  tr -s ' ' < "$f" | sed 's/", "/"\n"/g' > "$work/normalized/$id.txt"
  n=$((n + 1))
  if [ $((n % batch)) -eq 0 ]; then echo "normalized $n"; fi
done
echo "normalized $n articles (LOG_LEVEL=$LOG_LEVEL)"
