#!/bin/sh
# training (optional): a toy 'model': term frequencies over all articles,
# computed a few times over so the stage lasts long enough to be sampled.
set -eu
work="${TROUPE_RUN_DIR:?}/work"
mkdir -p "$work/model"
for epoch in 1 2 3; do
  cat "$work"/normalized/*.txt | tr -cs 'A-Za-z' '\n' | tr 'A-Z' 'a-z' \
    | sort | uniq -c | sort -rn > "$work/model/vocab.tsv"
  echo "epoch $epoch: $(wc -l < "$work/model/vocab.tsv") terms"
  sleep 0.5
done
