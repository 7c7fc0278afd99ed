// cdp_browser: drives headless Chromium through the DevTools protocol over
// its --remote-debugging-pipe (JSON messages ended by NUL on fds 3 and 4),
// so that the browser strategy knows what `--dump-dom` hid: the main
// document's HTTP status, final URL, content type and timings. Chromium
// itself runs as an ordinary stage process (a job_worker: timeouts, logs,
// tree kill); it opens two FIFOs as fds 3 and 4, and one thread per page
// here speaks the protocol on the other ends:
//   Target.createTarget about:blank, Target.attachToTarget (flat session),
//   Network.enable, Page.enable, Page.navigate, then the main frame's
//   Document response (Network.responseReceived), Page.loadEventFired, a
//   quiet network for `settle`, Runtime.evaluate of the document's
//   outerHTML (written to the body file), Browser.close.
// The only header callers see; nlohmann-json stays in the .cpp.
#pragma once

#include "adapters/http_client/http_client.hpp"

#include <caf/timestamp.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace troupe {

struct browser_call {
  std::string url;
  std::string fifo_in;    // our commands, Chromium's fd 3
  std::string fifo_out;   // its replies and events, Chromium's fd 4
  std::string body_path;  // the rendered DOM, fsynced before `done`
  caf::timespan timeout{std::chrono::seconds(60)};  // the whole page
  caf::timespan settle{std::chrono::milliseconds(500)};  // quiet network after load
};

class browser_session {
public:
  /// Creates the two FIFOs (errc::os_error if it cannot) and starts the
  /// session's thread, which waits for Chromium to open them. `done` runs
  /// on that thread once: an http_outcome judged like an HTTP answer
  /// (responded with the main document's status), or no response with
  /// failure network/timeout/browser_unavailable and the reason.
  static caf::expected<std::shared_ptr<browser_session>>
  start(browser_call call, std::function<void(http_outcome)> done);

  /// The browser ended (or was stopped) before the page was captured: the
  /// session gives up at once instead of at its deadline.
  void abort() {
    aborted_ = true;
  }

  bool aborted() const {
    return aborted_;
  }

private:
  std::atomic<bool> aborted_{false};
};

/// The argv of a headless Chromium in pipe mode whose fds 3 and 4 are the
/// FIFOs (opened by /bin/sh, which then execs Chromium): no sandbox (troupe
/// may run as root), no GPU, no network of its own, a fresh profile.
std::vector<std::string> chromium_pipe_argv(const std::string& chromium,
                                            const std::string& profile_dir,
                                            const std::string& fifo_in,
                                            const std::string& fifo_out);

} // namespace troupe
