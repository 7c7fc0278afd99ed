#include "actors/http_worker.hpp"

#include "actors/http_judgement.hpp"
#include "actors/job_worker.hpp"
#include "adapters/http_client/http_client.hpp"

#include <caf/all.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace troupe {

namespace {

/// The job_worker interface plus what the http_client's thread sends back.
using http_worker_actor = job_worker_actor::extend<
  caf::reacts_to<fetched_atom, job_result, std::string>>;

struct http_state {
  http_worker_deps deps;
  job_spec spec;
  caf::typed_response_promise<job_result> rp;
  job_worker_actor browser;
  std::chrono::steady_clock::time_point t0;
  caf::timestamp started_at;
  std::string resolved_by;  // auto: why the strategy ended up as it did
  bool started = false;
  bool done = false;
  static inline const char* name = "http_worker";
};

using self_ptr = http_worker_actor::stateful_pointer<http_state>;

std::string read_head(const std::string& path, size_t limit) {
  std::ifstream in(path, std::ios::binary);
  std::string out(limit, '\0');
  in.read(&out[0], static_cast<std::streamsize>(limit));
  out.resize(static_cast<size_t>(in.gcount()));
  return out;
}

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
  job_spec js = st.spec;
  js.strategy = "exec";
  auto profile = st.spec.body_path + ".chromium-profile";
  js.argv = chromium_argv(st.deps.chromium, st.spec.http.url, profile);
  js.stdout_path = st.spec.body_path;  // the rendered DOM is the body
  st.browser = spawn_job_worker(self->system(), st.deps.runner, st.deps.listener);
  self->request(st.browser, caf::infinite, start_atom_v, std::move(js))
    .then(
      [=](job_result& r) {
        auto& st = self->state;
        auto me = caf::actor_cast<http_worker_actor>(self);
        auto body = st.spec.body_path;
        auto errlog = st.spec.stderr_path;
        auto url = st.spec.http.url;
        // Read back what Chromium wrote on the client's thread, not here.
        st.deps.client->post([me, r, body, errlog, url, profile]() mutable {
          auto head = read_head(body, 64 * 1024);
          auto err = read_head(errlog, 256 * 1024);
          std::error_code ec;
          std::filesystem::remove_all(profile, ec);
          http_stats s;
          s.final_url = url;
          s.content_type = "text/html";
          s.content_length = static_cast<int64_t>(std::filesystem::file_size(body, ec));
          s.title = page_title(head);
          s.total_ms = std::chrono::duration<double, std::milli>(r.duration).count();
          r.http = s;
          r.strategy = "browser";
          if (r.status == stage_status::succeeded) {
            auto load = browser_load_error(err);
            if (!load.empty()) {
              r.status = stage_status::failed;
              r.failure = failure_code::network;
              r.error = "Chromium could not load " + url + ": " + load;
            } else if (head.empty()) {
              r.status = stage_status::failed;
              r.failure = failure_code::bad_response;
              r.error = "Chromium printed no DOM for " + url;
            }
          }
          caf::anon_send(me, fetched_atom_v, std::move(r), std::string{});
        });
      },
      [=](caf::error& err) {
        job_result r;
        r.strategy = "browser";
        r.status = stage_status::failed;
        r.failure = failure_code::lost;
        r.error = "browser job_worker failed: " + self->system().render(err);
        deliver(self, std::move(r));
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
    // job_worker's internal messages: an http_worker gets none of them.
    [=](launched_atom, int32_t, std::string&) {},
    [=](launch_failed_atom, std::string&) {},
    [=](exited_atom, const process_exit&) {},
    [=](synced_atom, int32_t) {},
    [=](timeout_atom) {},
    [=](kill_atom) {},
    [=](poll_atom) {},
  };
}

} // namespace

job_worker_actor spawn_http_worker(caf::actor_system& sys, http_worker_deps deps) {
  return caf::actor_cast<job_worker_actor>(sys.spawn(http_worker, std::move(deps)));
}

} // namespace troupe
