#!/usr/bin/env python3
"""crawl: 'fetches' articles by generating them deterministically into
$TROUPE_RUN_DIR/work/raw/*.json (no network: a canary must run anywhere)."""
import json, os, random, sys

work = os.path.join(os.environ.get("TROUPE_RUN_DIR", "."), "work")
raw = os.path.join(work, "raw")
os.makedirs(raw, exist_ok=True)
count = 12 if "--canary" in sys.argv else 200
rng = random.Random(42)
places = ["Lisbon", "Nairobi", "Osaka", "Quito", "Tromso", "Hanoi"]
topics = ["harbour", "election", "festival", "railway", "vaccine", "drought", "startup"]
orgs = ["Reuters", "Acme Corp", "Red Cross", "City Council", "Port Authority"]
for i in range(count):
    place, topic, org = rng.choice(places), rng.choice(topics), rng.choice(orgs)
    sentences = [
        f"The {topic} in {place} drew attention from {org} on day {rng.randint(1, 28)}.",
        f"Officials in {place} said the {topic} would continue.",
        f"{org} published figures showing {rng.randint(10, 900)} people were involved.",
    ]
    article = {
        "id": f"a{i:04d}",
        "source": f"https://news.example/{place.lower()}/{i}",
        "title": f"{topic.capitalize()} news from {place}",
        "body": "  ".join(sentences * rng.randint(2, 5)),
        "published": f"2026-11-{(i % 28) + 1:02d}",
    }
    if "--inject-bad" in sys.argv and i == 7:
        article["title"] = ""          # editorial-checks must catch this
    with open(os.path.join(raw, article["id"] + ".json"), "w") as f:
        json.dump(article, f)
print(f"crawled {count} articles into {raw}")
