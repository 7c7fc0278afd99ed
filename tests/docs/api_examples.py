#!/usr/bin/env python3
"""Runs docs/api.md's ```sh blocks, in order, against a real coordinator
(build/troupe coordinator --pipelines configs/pipelines, a token, a free
port), as a reader would paste them. $TROUPE and $TOKEN are set; variables a
block sets are there in the next. Every command must exit 0, and a line
ending in "# prints: X" must print X (its first line of output). Fails
listing each line that did not behave as documented."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

root, build = sys.argv[1], sys.argv[2]
text = open(os.path.join(root, "docs", "api.md")).read()
blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
if len(blocks) < 8:
    sys.exit("api_examples: found only %d sh blocks in docs/api.md" % len(blocks))

work = tempfile.mkdtemp(prefix="troupe-api-doc-")
token = "doc-token-" + str(os.getpid())
out = open(os.path.join(work, "coordinator.out"), "w+")
err = open(os.path.join(work, "coordinator.err"), "w+")
co = subprocess.Popen([os.path.join(build, "troupe"), "coordinator", "--pipelines",
                       os.path.join(root, "configs", "pipelines"), "-o",
                       os.path.join(work, "out"), "--token", token, "--listen",
                       "127.0.0.1:0"], stdout=out, stderr=err, cwd=work)
failed = []
try:
    url = None
    for _ in range(200):
        out.seek(0)
        m = re.search(r"listening on (http://\S+)", out.read())
        if m:
            url = m.group(1)
            break
        time.sleep(0.05)
    if url is None:
        err.seek(0)
        sys.exit("api_examples: the coordinator did not start:\n" + err.read())
    env = dict(os.environ, TROUPE=url, TOKEN=token)
    env.pop("TROUPE_SERVER", None)
    state = os.path.join(work, "state.sh")
    n = 0
    for block in blocks:
        for line in block.splitlines():
            if not line.strip() or line.strip().startswith("#"):
                continue
            n += 1
            m = re.search(r"#\s*prints:\s*(.*?)\s*$", line)
            want = m.group(1) if m else None
            cmd = re.sub(r"\s+#.*$", "", line)
            script = ("set -o pipefail\n[ -f %s ] && . %s\n%s\nrc=$?\n"
                      "{ declare -p RUN; declare -p SCHEDULE; } 2>/dev/null > %s.new; mv %s.new %s\nexit $rc\n"
                      % (state, state, cmd, state, state, state))
            r = subprocess.run(["bash", "-c", script], cwd=root, env=env, capture_output=True,
                               text=True, timeout=120)
            got = r.stdout.splitlines()[0].strip() if r.stdout.strip() else ""
            ok = r.returncode == 0 and (want is None or got == want)
            print("%s  %s" % ("ok    " if ok else "FAILED", cmd))
            if not ok:
                print("   exit %d, printed %r, expected %r\n   stderr: %s"
                      % (r.returncode, got, want, r.stderr[-1000:]))
                failed.append(cmd)
finally:
    co.send_signal(signal.SIGTERM)
    try:
        co.wait(timeout=20)
    except subprocess.TimeoutExpired:
        co.kill()
    if failed:
        err.seek(0)
        print("coordinator log:\n" + err.read()[-4000:])
    shutil.rmtree(work, ignore_errors=True)
if failed:
    sys.exit("api_examples: %d line(s) of docs/api.md did not behave as documented" % len(failed))
print("api_examples: %d lines as documented" % n)
