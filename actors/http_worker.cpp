#include "actors/http_worker.hpp"

#include "actors/http_judgement.hpp"
#include "actors/job_worker.hpp"
#include "adapters/browser/cdp_browser.hpp"
#include "adapters/http_client/http_client.hpp"

#include <caf/all.hpp>

#include "messages/errors.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace troupe {

namespace {

/// The job_worker interface plus what the http_client's thread sends back.
using http_worker_actor = job_worker_actor::extend<
  caf::reacts_to<fetched_atom, job_result, std::string>,
  caf::reacts_to<spawned_atom, std::string, int32_t, std::string>>;

struct http_state {
  http_worker_deps deps;
  job_spec spec;
  caf::typed_response_promise<job_result> rp;
  job_worker_actor browser;
  std::shared_ptr<browser_session> page;  // the DevTools session of `browser`
  caf::optional<job_result> browser_job;   // how the Chromium process ended
  caf::optional<job_result> browser_page;  // what the page was, judged
  bool browser_stopped_by_us = false;      // the page was had (or lost); Chromium stopped
  std::chrono::steady_clock::time_point t0;
  caf::timestamp started_at;
  std::string resolved_by;  // auto: why the strategy ended up as it did
  bool started = false;
  bool done = false;
  static inline const char* name = "http_worker";
};

using self_ptr = http_worker_actor::stateful_pointer<http_state>;

void deliver(self_ptr self, job_result r) {
  auto& st = self->state;
  if (st.done)
    return;
  st.done = true;
  r.name = st.spec.name;
  r.started_at = st.started_at;
  r.finished_at = caf::make_timestamp();
  r.duration = std::chrono::steady_clock::now() - st.t0;
  if (r.http && !st.resolved_by.empty())
    r.http->resolved_by = st.resolved_by;
  st.rp.deliver(std::move(r));
  self->quit();
}

// An HTTP answer (or its absence) as a job result.
job_result judge(const job_spec& spec, http_outcome out) {
  job_result r;
  r.strategy = "http";
  r.http = out.stats;
  if (!out.responded) {
    r.status = out.failure == failure_code::timeout ? stage_status::timed_out
                                                    : stage_status::failed;
    r.failure = out.failure;
    r.error = out.error;
    return r;
  }
  r.http->title = page_title(out.head);
  r.retry_after = out.retry_after;
  auto code = classify_status(out.stats.status, spec.http.expect_status);
  if (code == failure_code::none) {
    r.status = stage_status::succeeded;
    return r;
  }
  r.status = stage_status::failed;
  r.failure = code;
  r.error = "HTTP " + std::to_string(out.stats.status) + " from " + out.stats.final_url
            + (spec.http.expect_status.empty() ? " (expected 2xx)" : " (not in expect.status)");
  return r;
}

// Both halves of a browser attempt are in: the page as judged, and how the
// Chromium process ended. The page decides, unless the process was stopped
// (timeout, cancel) or died before a page was had.
void finish_browser(self_ptr self) {
  auto& st = self->state;
  if (!st.browser_job || !st.browser_page)
    return;
  auto job = *st.browser_job;
  auto r = *st.browser_page;
  r.strategy = "browser";
  r.pid = job.pid;
  r.cpu_seconds = job.cpu_seconds;
  r.max_rss_bytes = job.max_rss_bytes;
  r.leftovers_killed = job.leftovers_killed;
  bool stopped = job.status == stage_status::timed_out
                 || (job.status == stage_status::cancelled && !st.browser_stopped_by_us);
  if (stopped && r.status != stage_status::succeeded) {
    r.status = job.status;
    r.failure = job.failure;
    r.error = job.error + (r.error.empty() ? "" : "; " + r.error);
  } else if (r.failure == failure_code::browser_unavailable
             && job.status != stage_status::succeeded) {
    r.error = "Chromium " + job.error + "; " + r.error;
  }
  deliver(self, std::move(r));
}

void run_browser(self_ptr self) {
  auto& st = self->state;
  if (st.deps.chromium.empty()) {
    job_result r;
    r.strategy = "browser";
    r.status = stage_status::failed;
    r.failure = failure_code::browser_unavailable;
    r.error = "strategy browser needs Chromium, which is not installed (apt-get install "
              "chromium, or set TROUPE_CHROMIUM to its path)";
    deliver(self, std::move(r));
    return;
  }
  auto me = caf::actor_cast<http_worker_actor>(self);
  browser_call call;
  call.url = st.spec.http.url;
  call.fifo_in = st.spec.body_path + ".cdp-in";
  call.fifo_out = st.spec.body_path + ".cdp-out";
  call.body_path = st.spec.body_path;
  call.timeout = st.spec.timeout;
  auto spec = st.spec;
  auto page = browser_session::start(call, [me, spec](http_outcome out) {
    auto r = judge(spec, out);
    r.strategy = "browser";
    caf::anon_send(me, fetched_atom_v, std::move(r), std::move(out.head));
  });
  if (!page) {
    job_result r;
    r.strategy = "browser";
    r.status = stage_status::failed;
    r.failure = failure_code::unknown;
    r.error = describe(page.error());
    deliver(self, std::move(r));
    return;
  }
  st.page = *page;
  job_spec js = st.spec;
  js.strategy = "exec";
  auto profile = st.spec.body_path + ".chromium-profile";
  js.argv = chromium_pipe_argv(st.deps.chromium, profile, call.fifo_in, call.fifo_out);
  // The browser's start is heard here and passed on as this worker's own,
  // so that whoever watches this attempt (the node) knows its tree.
  st.browser = spawn_job_worker(self->system(), st.deps.runner,
                                caf::actor_cast<job_listener_actor>(self));
  self->request(st.browser, caf::infinite, start_atom_v, std::move(js))
    .then(
      [=](job_result& r) {
        auto& st = self->state;
        st.browser_job = std::move(r);
        if (st.page)
          st.page->abort();  // if the page is still pending, it will never come now
        // The profile goes on the client's thread, not here.
        st.deps.client->post([profile] {
          std::error_code ec;
          std::filesystem::remove_all(profile, ec);
        });
        finish_browser(self);
      },
      [=](caf::error& err) {
        auto& st = self->state;
        if (st.page)
          st.page->abort();
        job_result r;
        r.strategy = "browser";
        r.status = stage_status::failed;
        r.failure = failure_code::lost;
        r.error = "browser job_worker failed: " + self->system().render(err);
        st.browser_job = r;
        if (!st.browser_page)
          st.browser_page = r;
        finish_browser(self);
      });
}

void run_http(self_ptr self) {
  auto& st = self->state;
  auto me = caf::actor_cast<http_worker_actor>(self);
  http_call call{st.spec.http, st.spec.timeout, st.spec.body_path};
  auto spec = st.spec;
  st.deps.client->fetch(std::move(call), [me, spec](http_outcome out) {
    auto head = out.head;
    caf::anon_send(me, fetched_atom_v, judge(spec, std::move(out)), std::move(head));
  });
}

http_worker_actor::behavior_type http_worker(self_ptr self, http_worker_deps deps) {
  self->state.deps = std::move(deps);
  return {
    [=](start_atom, job_spec& spec) -> caf::result<job_result> {
      auto& st = self->state;
      if (st.started)
        return caf::make_error(caf::sec::invalid_argument, "http_worker runs one job");
      st.started = true;
      st.spec = std::move(spec);
      st.t0 = std::chrono::steady_clock::now();
      st.started_at = caf::make_timestamp();
      st.rp = self->make_response_promise<job_result>();
      if (st.spec.strategy == "browser")
        run_browser(self);
      else
        run_http(self);
      return st.rp;
    },
    [=](fetched_atom, job_result& r, std::string& head) {
      auto& st = self->state;
      if (st.done)
        return;
      if (r.strategy == "browser") {
        // The page is judged; Chromium exits after Browser.close. If the
        // session gave up (deadline, DevTools error), stop the browser.
        bool captured = r.http && r.http->status > 0;
        st.browser_page = std::move(r);
        if (!captured && !st.browser_job && st.browser) {
          st.browser_stopped_by_us = true;
          self->send(st.browser, cancel_atom_v);
        }
        finish_browser(self);
        return;
      }
      if (r.strategy == "http" && st.spec.strategy == "auto") {
        if (r.failure == failure_code::blocked) {
          st.resolved_by = "browser: HTTP " + std::to_string(r.http->status) + " to the probe";
          run_browser(self);
          return;
        }
        if (r.status == stage_status::succeeded && looks_client_rendered(head)) {
          st.resolved_by = "browser: the probe's page renders with JavaScript";
          run_browser(self);
          return;
        }
        st.resolved_by = "http: the probe's answer was used";
      }
      deliver(self, std::move(r));
    },
    [=](cancel_atom) {
      auto& st = self->state;
      if (st.browser) {
        st.browser_stopped_by_us = false;  // the user's cancel, whatever came before
        self->send(st.browser, cancel_atom_v);  // its result comes back as usual
        return;
      }
      job_result r;
      r.strategy = "http";
      r.status = stage_status::cancelled;
      r.failure = failure_code::cancelled;
      r.error = "cancelled during the HTTP request";
      deliver(self, std::move(r));
    },
    [=](spawned_atom, std::string& stage, int32_t pid, std::string& cgroup) {
      if (self->state.deps.listener)
        self->send(self->state.deps.listener, spawned_atom_v, std::move(stage), pid,
                   std::move(cgroup));
    },
    [=](kill_atom, std::string& why) {
      // limits.memory: only the browser has a tree to kill.
      if (self->state.browser)
        self->send(self->state.browser, kill_atom_v, std::move(why));
    },
  };
}

} // namespace

job_worker_actor spawn_http_worker(caf::actor_system& sys, http_worker_deps deps) {
  return caf::actor_cast<job_worker_actor>(sys.spawn(http_worker, std::move(deps)));
}

} // namespace troupe
