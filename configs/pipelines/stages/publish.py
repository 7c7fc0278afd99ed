#!/usr/bin/env python3
"""publish: writes the site (index.html) and a JSON feed from parsed.jsonl."""
import html, json, os

work = os.path.join(os.environ["TROUPE_RUN_DIR"], "work")
site = os.path.join(work, "site")
os.makedirs(site, exist_ok=True)
with open(os.path.join(work, "parsed.jsonl")) as f:
    items = [json.loads(line) for line in f]
with open(os.path.join(site, "feed.json"), "w") as f:
    json.dump({"items": items}, f, indent=1)
with open(os.path.join(site, "index.html"), "w") as f:
    f.write("<!doctype html><title>canary</title><ul>\n")
    for it in items:
        f.write(f"<li>{html.escape(it['title'])} ({it['words']} words)</li>\n")
    f.write("</ul>\n")
print(f"published {len(items)} articles to {site}")
