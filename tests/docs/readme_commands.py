#!/usr/bin/env python3
"""Runs every command of the README's ```sh blocks from the repository root,
with ./build replaced by the build folder given, and checks its exit code:
the one a trailing comment names ("exit 2"), else 0. Fails listing each
command that did not behave as documented."""
import os
import re
import subprocess
import sys

root, build = sys.argv[1], sys.argv[2]
text = open(os.path.join(root, "README.md")).read()
blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
commands = []
for block in blocks:
    for line in block.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        expect = 0
        m = re.search(r"#.*\bexit (\d+)", line)
        if m:
            expect = int(m.group(1))
        cmd = re.sub(r"\s+#.*$", "", line).replace("./build/", build.rstrip("/") + "/")
        commands.append((cmd, expect))
if len(commands) < 5:
    sys.exit("readme_commands: found only %d commands in README.md" % len(commands))
failed = []
for cmd, expect in commands:
    r = subprocess.run(["bash", "-c", cmd], cwd=root, capture_output=True, text=True,
                       timeout=300)
    status = "ok" if r.returncode == expect else "FAILED"
    print("%s  exit %d (expected %d)  %s" % (status, r.returncode, expect, cmd))
    if r.returncode != expect:
        failed.append(cmd)
        print(r.stdout[-2000:], r.stderr[-2000:])
if failed:
    sys.exit("readme_commands: %d command(s) did not behave as the README says" % len(failed))
print("readme_commands: %d commands as documented" % len(commands))
