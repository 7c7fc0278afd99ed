#!/usr/bin/env python3
"""parse: extracts title, word count and capitalised entities of each
article into $TROUPE_RUN_DIR/work/parsed.jsonl."""
import glob, json, os, re

work = os.path.join(os.environ["TROUPE_RUN_DIR"], "work")
out = os.path.join(work, "parsed.jsonl")
n = 0
with open(out, "w") as f:
    for path in sorted(glob.glob(os.path.join(work, "raw", "*.json"))):
        with open(path) as a:
            art = json.load(a)
        words = re.findall(r"[A-Za-z']+", art["body"])
        entities = sorted(set(re.findall(r"\b[A-Z][a-z]+(?: [A-Z][a-z]+)*", art["body"])))
        f.write(json.dumps({"id": art["id"], "title": art["title"],
                            "words": len(words), "entities": entities}) + "\n")
        n += 1
print(f"parsed {n} articles into {out}")
