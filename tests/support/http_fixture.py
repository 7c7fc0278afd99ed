#!/usr/bin/env python3
"""The HTTP fixture server of the integration tests: real sockets on loopback.
Prints its port on stdout, then serves until killed. With HTTP_FIXTURE_LOG
set, appends one line per answer there: "STATUS PATH browser|client", the
fixture's own record for tests to compare troupe's with.
  /ok         200, a page with a title
  /forbidden  403 to plain HTTP clients; 200 to headless Chromium
  /blocked    403 to everyone, Chromium included (a page with a title)
  /limited    429 with Retry-After: 1
  /error      500
  /slow       answers after 5 s
  /js         a page whose content only JavaScript renders
"""
import http.server
import os
import socketserver
import sys
import time

JS_PAGE = b"""<!doctype html><html><head><title>loading</title></head>
<body><div id="root"></div>
<script>
document.getElementById('root').innerHTML = '<h1 id="done">rendered by javascript</h1>';
document.title = 'Rendered by JS';
</script></body></html>"""


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, status, body=b"", ctype="text/html", headers=()):
        log = os.environ.get("HTTP_FIXTURE_LOG")
        if log:
            who = "browser" if "HeadlessChrome" in self.headers.get("User-Agent", "") else "client"
            with open(log, "a") as f:
                f.write("%d %s %s\n" % (status, self.path, who))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/ok":
            self.send(200, b"<html><head><title>Fixture OK</title></head><body><p>"
                      + b"hello " * 50 + b"</p></body></html>")
        elif path == "/forbidden":
            if "HeadlessChrome" in self.headers.get("User-Agent", ""):
                self.send(200, b"<html><head><title>Welcome, browser</title></head>"
                          b"<body><p>let in</p></body></html>")
            else:
                self.send(403, b"<html><body>go away</body></html>")
        elif path == "/blocked":
            self.send(403, b"<html><head><title>Access denied</title></head>"
                      b"<body><p>blocked for everyone</p></body></html>")
        elif path == "/limited":
            self.send(429, b"slow down", "text/plain", [("Retry-After", "1")])
        elif path == "/error":
            self.send(500, b"boom", "text/plain")
        elif path == "/slow":
            time.sleep(5)
            self.send(200, b"late")
        elif path == "/js":
            self.send(200, JS_PAGE)
        else:
            self.send(404, b"not found", "text/plain")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    srv = Server(("127.0.0.1", 0), Handler)
    # One write, so a reader never sees the digits without the newline.
    sys.stdout.write("%d\n" % srv.server_address[1])
    sys.stdout.flush()
    srv.serve_forever()
