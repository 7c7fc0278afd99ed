#!/usr/bin/env python3
"""kg-ingest (optional): entity co-occurrence edges into work/graph.tsv."""
import itertools, json, os
from collections import Counter

work = os.path.join(os.environ["TROUPE_RUN_DIR"], "work")
edges = Counter()
with open(os.path.join(work, "parsed.jsonl")) as f:
    for line in f:
        ents = json.loads(line)["entities"]
        edges.update(itertools.combinations(ents, 2))
with open(os.path.join(work, "graph.tsv"), "w") as f:
    for (a, b), n in edges.most_common():
        f.write(f"{a}\t{b}\t{n}\n")
print(f"ingested {len(edges)} edges")
