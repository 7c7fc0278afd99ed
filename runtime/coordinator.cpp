#include "runtime/coordinator.hpp"
#include "adapters/threads/thread_name.hpp"

#include "actors/node.hpp"
#include "actors/resource_sampler.hpp"
#include "runtime/gpu_settings.hpp"
#include "runtime/node_assembly.hpp"
#include "actors/running_order.hpp"
#include "actors/schedule_clock.hpp"
#include "actors/store_writer.hpp"
#include "adapters/artifacts/io_pool.hpp"
#include "adapters/artifacts/run_folder.hpp"
#include "adapters/http_client/http_client.hpp"
#include "adapters/process/process_runner.hpp"
#include "adapters/sampling/gpu_source.hpp"
#include "adapters/sampling/topology.hpp"
#include "messages/errors.hpp"
#include "messages/json.hpp"
#include "runtime/duration.hpp"
#include "runtime/coordinator/launch_check.hpp"
#include "runtime/host_env.hpp"
#include "runtime/ids.hpp"
#include "runtime/liveness.hpp"
#include "runtime/recovery.hpp"
#include "runtime/run_ref.hpp"
#include "runtime/run_plan.hpp"
#include "runtime/system.hpp"

#include <caf/all.hpp>

#include <nlohmann/json.hpp>

#include <dirent.h>
#include <malloc.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

namespace troupe {

// -- store_pool --------------------------------------------------------------

caf::expected<store_pool::lease> store_pool::borrow() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!idle_.empty()) {
      auto s = std::move(idle_.back());
      idle_.pop_back();
      return lease{this, std::move(s)};
    }
  }
  auto opened = open_store(url_);
  if (!opened)
    return std::move(opened.error());
  return lease{this, std::move(*opened)};
}

void store_pool::give_back(std::unique_ptr<store> s) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (idle_.size() < 16)
    idle_.push_back(std::move(s));
}

// -- metrics -----------------------------------------------------------------

void histogram::observe(double seconds) {
  std::lock_guard<std::mutex> guard{mtx_};
  size_t i = 0;
  while (i < std::size(buckets_) && seconds > buckets_[i])
    ++i;
  ++counts_[i];
  sum_ += seconds;
  ++n_;
}

void histogram::render(std::string& out, const char* name, const char* help) {
  std::lock_guard<std::mutex> guard{mtx_};
  out += std::string("# HELP ") + name + " " + help + "\n";
  out += std::string("# TYPE ") + name + " histogram\n";
  int64_t cumulative = 0;
  char num[64];
  for (size_t i = 0; i < std::size(buckets_); ++i) {
    cumulative += counts_[i];
    std::snprintf(num, sizeof num, "%g", buckets_[i]);
    out += std::string(name) + "_bucket{le=\"" + num + "\"} " + std::to_string(cumulative) + "\n";
  }
  cumulative += counts_[std::size(buckets_)];
  out += std::string(name) + "_bucket{le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
  std::snprintf(num, sizeof num, "%.6f", sum_);
  out += std::string(name) + "_sum " + num + "\n";
  out += std::string(name) + "_count " + std::to_string(n_) + "\n";
}

void coordinator_metrics::launched(const std::string& run_id,
                                   std::chrono::steady_clock::time_point at) {
  std::lock_guard<std::mutex> guard{mtx_};
  pending_[run_id] = at;
}

void coordinator_metrics::first_stage_started(const std::string& run_id) {
  auto now = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point at;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    auto it = pending_.find(run_id);
    if (it == pending_.end())
      return;
    at = it->second;
    pending_.erase(it);
  }
  launch_to_start.observe(std::chrono::duration<double>(now - at).count());
}

void coordinator_metrics::forget(const std::string& run_id) {
  std::lock_guard<std::mutex> guard{mtx_};
  pending_.erase(run_id);
}

// -- event_bell --------------------------------------------------------------

void event_bell::ring(const std::string& run_id) {
  std::function<void()> listener;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    ++gen_;
    runs_[run_id] = gen_;
    if (runs_.size() > 8192)  // forget runs rung long ago (they read as 0: one look more)
      for (auto it = runs_.begin(); it != runs_.end();)
        it = it->second + 4096 < gen_ ? runs_.erase(it) : std::next(it);
    listener = listener_;
  }
  cv_.notify_all();
  if (listener)
    listener();
}

uint64_t event_bell::generation_of(const std::string& run_id) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = runs_.find(run_id);
  return it == runs_.end() ? 0 : it->second;
}

void event_bell::on_ring(std::function<void()> f) {
  std::lock_guard<std::mutex> guard{mtx_};
  listener_ = std::move(f);
}

uint64_t event_bell::wait(uint64_t seen, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> guard{mtx_};
  cv_.wait_for(guard, timeout, [&] { return gen_ != seen; });
  return gen_;
}

uint64_t event_bell::generation() {
  std::lock_guard<std::mutex> guard{mtx_};
  return gen_;
}

// -- the actors --------------------------------------------------------------

struct coordinator::actors {
  explicit actors(int threads_unused = 0) : sys(prepare(cfg)) {
    (void) threads_unused;
  }
  ~actors() {
    // The broker's verification timer would keep it (and the system) alive.
    if (gpus)
      caf::anon_send_exit(gpus, caf::exit_reason::user_shutdown);
  }
  static caf::actor_system_config& prepare(caf::actor_system_config& c) {
    register_types(c);
    configure_scheduler(c);
    return c;
  }
  // The pool outlives the actor system (the artifact writers post to it).
  std::shared_ptr<io_pool> pool = std::make_shared<io_pool>();
  caf::actor_system_config cfg;
  caf::actor_system sys;
  std::shared_ptr<process_runner> runner;
  node_actor node;
  resource_sampler_actor sampler;
  gpu_broker_actor gpus;
  std::vector<gpu_figures> gpu_inventory;  // the host's GPUs at start (launch checks)
  store_actor store;
  scheduler_actor scheduler;
  progress_listener_actor listener;
  host_info host;
};


coordinator::coordinator(coordinator_config cfg, logger log)
  : cfg_(std::move(cfg)),
    log_(std::move(log)),
    pool_(cfg_.db.empty() ? cfg_.output + "/troupe.db" : cfg_.db) {
  url_ = cfg_.db.empty() ? cfg_.output + "/troupe.db" : cfg_.db;
  gpu_ = std::make_unique<gpu_service>([this](const std::string& line) { log_("info", line); });
}

coordinator::~coordinator() {
  {
    std::lock_guard<std::mutex> guard{loop_mtx_};
    loop_stop_ = true;
  }
  loop_cv_.notify_all();
  if (schedule_thread_.joinable())
    schedule_thread_.join();
}

void coordinator::load_pipelines() {
  std::map<std::string, pipeline_def> found;
  if (DIR* d = ::opendir(cfg_.pipelines.c_str())) {
    while (auto* e = ::readdir(d)) {
      std::string name = e->d_name;
      auto dot = name.rfind('.');
      if (name[0] == '.' || dot == std::string::npos)
        continue;
      auto ext = name.substr(dot);
      if (ext != ".yaml" && ext != ".yml")
        continue;
      auto loaded = load_pipeline(cfg_.pipelines + "/" + name);
      if (!loaded) {
        log_("warn", "pipeline " + cfg_.pipelines + "/" + name
                       + " is not registered: " + describe(loaded.error()));
        continue;
      }
      auto key = loaded->name;
      if (found.count(key) != 0) {
        log_("warn", "pipeline " + loaded->file + " is not registered: its name '" + key
                       + "' is taken by " + found[key].file);
        continue;
      }
      found.emplace(key, std::move(*loaded));
    }
    ::closedir(d);
  }
  // Each pipeline's own max_running, as the files say now (a pipeline added
  // or changed since the start included).
  if (actors_ && actors_->scheduler)
    for (auto& [name, p] : found)
      caf::anon_send(actors_->scheduler, limit_atom_v, name, p.max_running);
  std::lock_guard<std::mutex> guard{pipelines_mtx_};
  pipelines_ = std::move(found);
}

std::vector<pipeline_def> coordinator::pipelines() {
  std::lock_guard<std::mutex> guard{pipelines_mtx_};
  std::vector<pipeline_def> out;
  for (auto& [name, p] : pipelines_)
    out.push_back(p);
  return out;
}

std::optional<pipeline_def> coordinator::find_pipeline(const std::string& name) {
  {
    std::lock_guard<std::mutex> guard{pipelines_mtx_};
    auto it = pipelines_.find(name);
    if (it != pipelines_.end())
      return it->second;
  }
  // A pipeline added to the folder since: look again once.
  load_pipelines();
  std::lock_guard<std::mutex> guard{pipelines_mtx_};
  auto it = pipelines_.find(name);
  if (it == pipelines_.end())
    return std::nullopt;
  return it->second;
}

caf::error coordinator::start() {
  if (cfg_.pipelines.empty())
    return caf::make_error(errc::bad_input, "--pipelines: no folder of pipelines given");
  DIR* d = ::opendir(cfg_.pipelines.c_str());
  if (d == nullptr)
    return caf::make_error(errc::bad_input, "--pipelines " + cfg_.pipelines + ": "
                                              + std::strerror(errno));
  ::closedir(d);
  if (auto err = make_directories(cfg_.output))
    return caf::make_error(errc::bad_input, "--output " + cfg_.output + ": " + describe(err));
  auto host = read_host_info();
  id_ = cfg_.id.empty() ? host.hostname + ":" + std::to_string(::getpid()) : cfg_.id;
  owner_ = owner_token(host.hostname);
  load_pipelines();
  // The store: opened and migrated here, so that a bad --db fails the start.
  auto db = open_store(url_);
  if (!db)
    return std::move(db.error());
  actors_ = std::make_unique<actors>();
  auto& a = *actors_;
  a.host = host;
  a.runner = std::make_shared<process_runner>(true, true);
  a.host.process_tracking = a.runner->tracking();
  auto gpus = open_nvml();
  a.host.gpus = static_cast<int32_t>(gpus->read().size());
  std::string node_error;
  // Its GPU leases are rows of this store, so they outlive a restart.
  auto local = make_local_node(
    a.sys,
    local_node_options{a.runner,  true,          cfg_.node_slots,      gpus,
                       url_,      host.hostname, cfg_.gpu,             cfg_.gpu_memory_kill,
                       "troupe coordinator"},
    node_error);
  if (!local)
    return caf::make_error(errc::bad_input, node_error);
  a.sampler = local->sampler;
  a.gpus = local->gpus;
  a.gpu_inventory = local->nvml->read();
  gpu_->attach(a.sys, a.gpus);
  a.store = spawn_store_writer(a.sys, std::move(*db));
  a.node = local->node;
  auto* metrics = &metrics_;
  auto* bell = &bell_;
  auto log = log_;
  a.listener = a.sys.spawn([metrics, bell, log](progress_listener_actor::pointer)
                             -> progress_listener_actor::behavior_type {
    return {
      [=](progress_event& ev) {
        if (ev.kind == progress_event::kind_t::stage_started) {
          metrics->first_stage_started(ev.run_id);
        } else if (ev.kind == progress_event::kind_t::run_finished) {
          metrics->forget(ev.run_id);
          log("info", "run " + ev.run_id + " ended " + to_string(ev.run) + " (exit "
                        + std::to_string(ev.exit_code) + ")");
        }
        bell->ring(ev.run_id);
      },
    };
  });
  scheduler_deps deps;
  deps.node = a.node;
  deps.pool = a.pool;
  deps.store = a.store;
  deps.listener = a.listener;
  deps.max_running = cfg_.max_running;
  for (auto& p : pipelines())
    if (p.max_running > 0)
      deps.pipeline_limits[p.name] = p.max_running;
  a.scheduler = spawn_scheduler(a.sys, std::move(deps));
  // What dead coordinators (or `troupe run`s) left: adopted or reconciled
  // before anything new starts.
  reconcile_step();
  schedule_thread_ = std::thread([this] {
    name_this_thread("schedules");
    schedule_loop();
  });
  return caf::none;
}

void coordinator::stop(bool drain) {
  {
    std::lock_guard<std::mutex> guard{loop_mtx_};
    loop_stop_ = true;
  }
  loop_cv_.notify_all();
  if (schedule_thread_.joinable())
    schedule_thread_.join();
  if (!actors_)
    return;
  if (drain) {
    for (;;) {
      auto st = scheduler_stats();
      if (!st || (st->first == 0 && st->second == 0))
        break;
      log_("info", "draining: " + std::to_string(st->second) + " running, "
                     + std::to_string(st->first) + " queued");
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }
  // Everything sent to the store so far is committed before this returns.
  caf::scoped_actor self{actors_->sys};
  self->request(actors_->store, std::chrono::seconds(30), sync_atom_v)
    .receive([](write_health&) {}, [](caf::error&) {});
}

std::optional<std::pair<int32_t, int32_t>> coordinator::scheduler_stats() {
  if (!actors_)
    return std::nullopt;
  caf::scoped_actor self{actors_->sys};
  std::optional<std::pair<int32_t, int32_t>> out;
  self->request(actors_->scheduler, std::chrono::seconds(5), stats_atom_v)
    .receive([&](int32_t queued, int32_t running) { out.emplace(queued, running); },
             [](caf::error&) {});
  return out;
}

bool coordinator::ready() {
  if (!scheduler_stats())
    return false;
  auto db = pool_.borrow();
  return db && static_cast<bool>((*db)->schema_version());
}

std::map<std::string, std::string> coordinator::inheritance() const {
  auto secrets = store_url_secrets(url_);
  if (!cfg_.token.empty())
    secrets.push_back(cfg_.token);
  return stage_inheritance(secrets);
}

void coordinator::poke_schedules() {
  {
    std::lock_guard<std::mutex> guard{loop_mtx_};
    loop_poked_ = true;
  }
  loop_cv_.notify_all();
}

api_result<coordinator::prepared>
coordinator::prepare(const pipeline_def& p, const launch_request& req, const std::string& run_id,
                     const std::string& run_dir, int64_t epoch, caf::timestamp created,
                     bool resumed) {
  auto environment = inheritance();  // once: the check and the plan see the same
  auto checked = check_launch(p, req, environment);
  if (!checked)
    return checked.error;
  if (auto too_much = gpu_fit_problem(p, actors_->gpu_inventory); !too_much.empty()) {
    while (!too_much.empty() && too_much.back() == '\n')
      too_much.pop_back();
    return api_error{400, "bad_request", "pipeline '" + p.name
                                           + "' asks more than this host's GPUs have: "
                                           + too_much};
  }
  run_start start;
  start.params = checked->params;
  start.run_id = run_id;
  start.run_dir = run_dir;
  start.started_at = created;
  start.pid = static_cast<int32_t>(::getpid());
  start.owner = owner_;
  start.host = actors_->host;
  start.output_dir = cfg_.output;
  start.enabled = checked->enabled;
  start.sample_interval = cfg_.sample_interval;
  start.grace = cfg_.grace;
  start.environment = std::move(environment);
  start.epoch = epoch;
  start.resumed = resumed;
  start.launched_by = req.launched_by;
  auto plan = std::make_shared<run_plan>(make_run_plan(p, start));
  for (auto& job : plan->jobs)
    for (auto& [k, v] : req.env)
      set_env(job.env, k, v);
  plan->jitter = [gen = std::mt19937_64{std::random_device{}()}]() mutable {
    return std::uniform_real_distribution<double>(-1.0, 1.0)(gen);
  };
  prepared out;
  out.row = run_row_of(plan->record, created);
  out.plan = std::move(plan);
  return out;
}

void coordinator::dispatch(prepared p, int32_t priority) {
  auto run_id = p.row.run_id;
  metrics_.launched(run_id, std::chrono::steady_clock::now());
  ++metrics_.launches;
  caf::scoped_actor self{actors_->sys};
  self->request(actors_->scheduler, std::chrono::seconds(30), launch_atom_v,
                launch_plan{std::move(p.plan), priority})
    .receive([](std::string&) {}, [&](caf::error& err) {
      log_("error", "run " + run_id + ": the scheduler did not take it: " + to_string(err));
    });
  // The queued row is committed before the launch is answered: a client
  // that asks for the run next finds it.
  auto sent = std::chrono::steady_clock::now();
  self->request(actors_->store, std::chrono::seconds(30), sync_atom_v, run_id)
    .receive(
      [&](write_health&) {
        metrics_.store_commit.observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count());
      },
      [](caf::error&) {});
}

caf::expected<std::string> coordinator::new_run_folder(const pipeline_def& p, caf::timestamp now) {
  if (p.artifacts_in_store)
    return std::string{};  // artifacts: store: no folder
  return create_run_folder(cfg_.output, now);
}

std::string coordinator::output_full() {
  struct statvfs fs {};
  if (cfg_.min_free_space == 0 || ::statvfs(cfg_.output.c_str(), &fs) != 0)
    return {};
  uint64_t free = uint64_t{::geteuid() == 0 ? fs.f_bfree : fs.f_bavail} * fs.f_frsize;
  if (free >= cfg_.min_free_space)
    return {};
  auto mib = [](uint64_t b) { return std::to_string(b >> 20) + " MiB"; };
  return "the output folder's filesystem has " + (free < (1 << 20) ? std::to_string(free >> 10)
                                                                   + " KiB" : mib(free))
         + " free, under min_free_space (" + mib(cfg_.min_free_space)
         + "): no run is launched until space returns";
}

void coordinator::remove_run_folder(const std::string& run_dir) {
  if (run_dir.empty())
    return;
  ::rmdir((run_dir + "/logs").c_str());
  ::rmdir(run_dir.c_str());
}

api_result<run_row> coordinator::launch(const launch_request& req) {
  auto p = find_pipeline(req.pipeline);
  if (!p)
    return api_error{404, "not_found", "pipeline '" + req.pipeline + "' is not registered"};
  if (!p->artifacts_in_store)
    if (auto full = output_full(); !full.empty())
      return api_error{503, "output_full", full};
  auto now = caf::make_timestamp();
  auto run_dir = new_run_folder(*p, now);
  if (!run_dir) {
    // The path is the server's business: its log has it, the client gets why.
    auto why = describe(run_dir.error());
    log_("error", "launch of '" + p->name + "': --output " + cfg_.output + ": " + why);
    if (why.find(std::strerror(ENOSPC)) != std::string::npos)
      return api_error{503, "output_full", "the output folder's filesystem is full: no run "
                                           "can be launched until space returns"};
    return api_error{500, "internal", "cannot create the run's folder (the coordinator's log "
                                      "says why)"};
  }
  auto prep = prepare(*p, req, make_run_id(now), *run_dir, 1, now);
  if (!prep) {
    remove_run_folder(*run_dir);
    return prep.error;
  }
  auto row = prep->row;
  dispatch(std::move(*prep), req.priority);
  log_("info", "run " + row.run_id + " of '" + row.pipeline + "' launched");
  return row;
}

api_result<run_row> find_run(store& db, const std::string& text) {
  auto l = resolve_run(db, text, false);
  switch (l.result) {
    case run_lookup::outcome::found: return l.run;
    case run_lookup::outcome::ambiguous: return api_error{409, "ambiguous", ambiguity_text(text, l)};
    case run_lookup::outcome::error: return api_error{503, "store_unavailable", l.error};
    case run_lookup::outcome::none: break;
  }
  return api_error{404, "not_found", "no run " + text
                                       + " (give a run id, a unique prefix of one, or its folder's name)"};
}

api_result<run_row> coordinator::rerun(const std::string& ref, const rerun_request& req) {
  auto db = pool_.borrow();
  if (!db)
    return api_error{503, "store_unavailable", describe(db.error())};
  auto found = find_run(**db, ref);
  if (!found)
    return found.error;
  auto row = *found;
  const auto run_id = row.run_id;
  auto p = find_pipeline(row.pipeline);
  if (!p)
    return api_error{404, "not_found", "pipeline '" + row.pipeline + "' is not registered"};
  auto jobs = (*db)->jobs(run_id);
  if (!jobs)
    return api_error{503, "store_unavailable", describe(jobs.error())};
  auto choice = choose_rerun(*p, row, *jobs, req);
  if (!choice) {
    auto text = describe(choice.error());
    bool from = text.rfind("--from", 0) == 0;
    return api_error{from ? 400 : 409, from ? "bad_request" : "conflict", text};
  }
  auto now = caf::make_timestamp();
  choice->event.ts = now;
  auto reopened = (*db)->reopen_run(run_id, row.epoch, owner_, actors_->host.hostname,
                                    static_cast<int32_t>(::getpid()), choice->stages,
                                    choice->event, now);
  if (!reopened)
    return api_error{503, "store_unavailable", describe(reopened.error())};
  if (!*reopened)
    return api_error{409, "conflict", "run " + run_id + " changed meanwhile"};
  auto again = find_run(**db, run_id);
  auto jobs_now = (*db)->jobs(run_id);
  auto attempts = (*db)->attempts(run_id);
  if (!again || !jobs_now || !attempts)
    return api_error{503, "store_unavailable", "cannot read run " + run_id + " back"};
  row = *again;
  launch_request lr{row.pipeline, 0, {}, {}, params_of(row), row.launched_by};
  for (auto& j : *jobs_now)
    for (auto& s : p->stages)
      if (s.name == j.job && s.optional && j.attempts > 0)
        lr.enable.push_back(j.job);
  auto prep = prepare(*p, lr, run_id, row.run_dir, row.epoch, row.created_at, true);
  if (!prep)
    return prep.error;
  running_order::restore(prep->plan->record, *jobs_now, *attempts);
  // The record as it was stays beside the new one.
  for (int n = 1; n < 1000; ++n) {
    auto keep = row.run_dir + "/metadata.rerun-" + std::to_string(n) + ".json";
    if (::access(keep.c_str(), F_OK) == 0)
      continue;
    std::error_code ec;
    std::filesystem::copy_file(row.run_dir + "/metadata.json", keep, ec);
    break;
  }
  log_("info", "run " + run_id + ": " + choice->event.message);
  dispatch(std::move(*prep), 0);
  return row;
}

api_result<run_row> coordinator::cancel(const std::string& ref, const std::string& reason) {
  auto db = pool_.borrow();
  if (!db)
    return api_error{503, "store_unavailable", describe(db.error())};
  auto found = find_run(**db, ref);
  if (!found)
    return found.error;
  auto row = *found;
  const auto run_id = row.run_id;
  if (is_terminal(row.status))
    return api_error{409, "conflict", "run " + run_id + " has ended (" + to_string(row.status)
                                        + "); there is nothing to cancel"};
  caf::scoped_actor self{actors_->sys};
  bool here = false;
  self->request(actors_->scheduler, std::chrono::seconds(10), cancel_atom_v, run_id, reason)
    .receive([&](bool b) { here = b; }, [](caf::error&) {});
  if (!here) {
    // Another coordinator holds it: the request goes through the store,
    // and its owner cancels it within a second.
    auto asked = (*db)->request_cancel(run_id, caf::make_timestamp());
    if (!asked)
      return api_error{503, "store_unavailable", describe(asked.error())};
    if (!*asked)
      return api_error{409, "conflict", "run " + run_id + " has ended; there is nothing to cancel"};
    log_("info", "run " + run_id + ": cancel requested of its owner " + row.owner);
    return row;
  }
  log_("info", "run " + run_id + ": cancel requested");
  return row;
}

schedule_event_row coordinator::schedule_event(const schedule_row& s, const std::string& kind,
                                              caf::optional<caf::timestamp> tick,
                                              const std::string& run_id,
                                              const std::string& message) const {
  schedule_event_row e;
  e.ts = caf::make_timestamp();
  e.schedule_id = s.id;
  e.coordinator = id_;
  e.kind = kind;
  e.scheduled_for = tick;
  e.run_id = run_id;
  e.message = message;
  return e;
}

void coordinator::replace_runs(const schedule_row& s, const std::vector<run_row>& active,
                               caf::timestamp tick, const std::string& why,
                               std::vector<schedule_event_row>& events) {
  for (auto& r : active) {
    auto cancelled = cancel(r.run_id, "cancelled by schedule " + s.id + " (overlap: replace): "
                                        + why);
    events.push_back(schedule_event(
      s, "replaced", tick, r.run_id,
      cancelled ? "overlap: replace: run " + r.run_id + " cancelled"
                : "overlap: replace: run " + r.run_id
                    + " could not be cancelled: " + cancelled.error.message));
  }
}

api_result<run_row> coordinator::trigger(const std::string& id, const std::string& who) {
  auto db = pool_.borrow();
  if (!db)
    return api_error{503, "store_unavailable", describe(db.error())};
  auto found = (*db)->find_schedule(id);
  if (!found)
    return api_error{503, "store_unavailable", describe(found.error())};
  if (!*found)
    return api_error{404, "not_found", "no schedule " + id};
  const auto& s = **found;
  auto p = find_pipeline(s.pipeline);
  if (!p)
    return api_error{404, "not_found", "schedule " + s.id + ": pipeline '" + s.pipeline
                                         + "' is not registered here"};
  if (!p->artifacts_in_store)
    if (auto full = output_full(); !full.empty())
      return api_error{503, "output_full", full};
  auto now = caf::make_timestamp();
  std::vector<run_row> active;
  if (s.overlap != "allow") {
    auto busy = (*db)->active_runs_of(s.id);
    if (!busy)
      return api_error{503, "store_unavailable", describe(busy.error())};
    active = std::move(*busy);
  }
  if (s.overlap == "forbid" && !active.empty())
    return api_error{409, "conflict", "schedule " + s.id + " (overlap: forbid): its run "
                                        + active.front().run_id + " has not ended"};
  std::vector<schedule_event_row> events;
  replace_runs(s, active, now, "triggered by " + who + ", it launched a new run", events);
  auto run_dir = new_run_folder(*p, now);
  if (!run_dir) {
    log_("error", "trigger of " + s.id + ": --output " + cfg_.output + ": "
                    + describe(run_dir.error()));
    return api_error{500, "internal", "cannot create the run's folder (the coordinator's log "
                                      "says why)"};
  }
  auto req = launch_request_of(s);
  req.launched_by = "trigger";
  auto prep = prepare(*p, req, make_run_id(now), *run_dir, 1, now);
  if (!prep) {
    remove_run_folder(*run_dir);
    return prep.error;
  }
  prep->row.schedule_id = s.id;
  prep->row.scheduled_for = now;
  // The row goes in first, with its schedule (the scheduler's writes
  // leave schedule_id as it is), then its event, then the run starts.
  store_batch first;
  first.runs.push_back(prep->row);
  if (auto put = (*db)->apply(first); !put) {
    remove_run_folder(*run_dir);
    return api_error{503, "store_unavailable", describe(put.error())};
  }
  events.push_back(schedule_event(s, "triggered", now, prep->row.run_id,
                                  "triggered by " + who + ": launched run " + prep->row.run_id));
  if (auto err = (*db)->add_schedule_events(events))
    log_("warn", "schedule " + s.id + ": " + describe(err));
  auto row = prep->row;
  ++metrics_.schedule_launches;
  log_("info", "schedule " + s.id + ": triggered by " + who + ": launched run " + row.run_id);
  dispatch(std::move(*prep), s.priority);
  return row;
}

// -- schedules ---------------------------------------------------------------

namespace {

caf::expected<schedule_timing> timing_of(const schedule_row& s, caf::timespan grace) {
  schedule_timing t;
  t.grace = grace;
  if (s.catch_up == "none")
    t.catch_up = catch_up_policy::none;
  else if (s.catch_up == "all")
    t.catch_up = catch_up_policy::all;
  else
    t.catch_up = catch_up_policy::one;
  if (s.kind == "once") {
    t.kind = schedule_kind::once;
    std::string why;
    auto at = parse_iso8601(s.spec, &why);
    if (!at)
      return caf::make_error(errc::bad_input, "at: '" + s.spec + "': " + why);
    t.at = *at;
  } else if (s.kind == "interval") {
    t.kind = schedule_kind::interval;
    auto every = parse_duration(s.spec);
    if (!every || every->count() <= 0)
      return caf::make_error(errc::bad_input, "every: '" + s.spec + "' is not a positive "
                                              "duration (e.g. 30s, 5m, 1h)");
    if (*every < std::chrono::seconds(1))
      return caf::make_error(errc::bad_input, "every: '" + s.spec + "': at least 1s");
    t.every = *every;
    t.anchor = s.anchor;
  } else if (s.kind == "cron") {
    t.kind = schedule_kind::cron;
    auto c = parse_cron(s.spec);
    if (!c)
      return caf::make_error(errc::bad_input, "cron: " + describe(c.error()));
    t.cron = *c;
  } else {
    return caf::make_error(errc::bad_input, "kind: '" + s.kind
                                              + "' is not one of once, interval, cron");
  }
  return t;
}

} // namespace

api_result<schedule_row> coordinator::prepare_schedule(schedule_row s, bool retimed) {
  if (!find_pipeline(s.pipeline))
    return api_error{404, "not_found", "pipeline '" + s.pipeline + "' is not registered"};
  if (s.overlap != "allow" && s.overlap != "forbid" && s.overlap != "replace")
    return bad_request("overlap", "'" + s.overlap + "' is not one of allow, forbid, replace");
  if (s.catch_up != "none" && s.catch_up != "one" && s.catch_up != "all")
    return bad_request("catch_up", "'" + s.catch_up + "' is not one of none, one, all");
  auto t = timing_of(s, cfg_.schedule_grace);
  if (!t) {
    auto msg = describe(t.error());
    auto colon = msg.find(':');
    return bad_request(msg.substr(0, colon), msg.substr(colon + 2));
  }
  // A tick at this very moment counts: the first tick at or after now.
  auto first = next_tick(*t, caf::make_timestamp() - std::chrono::nanoseconds(1));
  if (!first && s.kind == "cron")
    return bad_request("cron", "'" + s.spec + "' never fires (no day it names occurs in the "
                               "months it names)");
  if (!first && s.kind == "once" && retimed)
    return bad_request("at", "'" + s.spec + "' has passed; a once schedule there would never "
                             "fire");
  s.next_run_at = first ? caf::optional<caf::timestamp>{*first} : caf::none;
  return s;
}

void coordinator::handle_claim(store& db, const claimed_schedule& c) {
  const auto& s = c.row;
  auto now = caf::make_timestamp();
  if (!c.taken_from.empty()) {
    ++metrics_.takeovers;
    log_("warn", "schedule " + s.id + ": took over the expired claim of " + c.taken_from);
  }
  ++metrics_.claims;
  if (cfg_.fault_claim_delay.count() > 0)
    std::this_thread::sleep_for(cfg_.fault_claim_delay);
  std::vector<schedule_event_row> events;
  auto event = [&](const std::string& kind, caf::optional<caf::timestamp> tick,
                   const std::string& run_id, const std::string& message) {
    events.push_back(schedule_event(s, kind, tick, run_id, message));
  };
  auto release = [&](const caf::optional<caf::timestamp>& next) {
    auto done = db.finish_schedule_claim(s.id, id_, next, {}, events);
    if (!done)
      log_("error", "schedule " + s.id + ": " + describe(done.error()));
  };
  auto t = timing_of(s, cfg_.schedule_grace);
  auto p = find_pipeline(s.pipeline);
  if (!t || !p || !s.next_run_at) {
    // Nothing can be launched for it now; it stays due and is looked at again.
    auto why = !t ? describe(t.error())
                  : !p ? "pipeline '" + s.pipeline + "' is not registered here" : "no next tick";
    event("skipped", s.next_run_at, "", why);
    release(s.next_run_at);
    log_("warn", "schedule " + s.id + ": " + why);
    return;
  }
  auto decision = decide(*t, *s.next_run_at, now);
  for (auto& tick : decision.skipped) {
    event("skipped", tick, "", "missed while no coordinator ran (catch_up: " + s.catch_up + ")");
    ++metrics_.schedule_skips;
  }
  auto req = launch_request_of(s);
  // Overlap: the schedule's runs still queued or running.
  std::vector<run_row> active;
  if (s.overlap != "allow" && !decision.launch.empty()) {
    auto found = db.active_runs_of(s.id);
    if (!found) {
      log_("error", "schedule " + s.id + ": " + describe(found.error()));
      return;  // the claim expires; tried again then
    }
    active = std::move(*found);
  }
  std::vector<prepared> launched;
  std::vector<run_row> rows;
  auto full = p->artifacts_in_store ? std::string{} : output_full();
  for (size_t k = 0; k < decision.launch.size(); ++k) {
    auto tick = decision.launch[k];
    if (!full.empty()) {
      event("skipped", tick, "", full);
      ++metrics_.schedule_skips;
      continue;
    }
    if (s.overlap == "forbid" && (!active.empty() || !launched.empty())) {
      auto& busy = !launched.empty() ? launched.back().row : active.front();
      event("skipped", tick, busy.run_id,
            "overlap: forbid: run " + busy.run_id + " of this schedule has not ended");
      ++metrics_.schedule_skips;
      continue;
    }
    if (s.overlap == "replace") {
      if (k + 1 < decision.launch.size()) {
        event("skipped", tick, "", "overlap: replace: superseded by a later tick");
        ++metrics_.schedule_skips;
        continue;
      }
      replace_runs(s, active, tick, "its tick of " + iso8601(tick) + " launched a new run",
                   events);
    }
    auto created = caf::make_timestamp();
    auto run_dir = new_run_folder(*p, created);
    if (!run_dir) {
      log_("error", "schedule " + s.id + ": --output " + cfg_.output + ": "
                      + describe(run_dir.error()));
      return;
    }
    auto prep = prepare(*p, req, make_run_id(created), *run_dir, 1, created);
    if (!prep) {
      event("skipped", tick, "", prep.error.message);
      continue;
    }
    prep->row.schedule_id = s.id;
    prep->row.scheduled_for = tick;
    bool late = now - tick > cfg_.schedule_grace;
    event(late ? "caught_up" : "launched", tick, prep->row.run_id,
          (late ? "missed tick launched late as run " : "launched run ") + prep->row.run_id);
    rows.push_back(prep->row);
    launched.push_back(std::move(*prep));
  }
  auto next = decision.next_run_at ? caf::optional<caf::timestamp>{*decision.next_run_at}
                                   : caf::optional<caf::timestamp>{};
  auto done = db.finish_schedule_claim(s.id, id_, next, rows, events);
  std::set<std::string> inserted;
  if (done && done->held)
    inserted.insert(done->inserted.begin(), done->inserted.end());
  else
    log_("warn", "schedule " + s.id + ": "
                   + (done ? std::string("the claim expired before its launches were written; "
                                         "nothing launched")
                           : describe(done.error())));
  for (auto& l : launched) {
    if (inserted.count(l.row.run_id) == 0) {
      remove_run_folder(l.row.run_dir);
      continue;
    }
    ++metrics_.schedule_launches;
    log_("info", "schedule " + s.id + ": launched run " + l.row.run_id + " for "
                   + iso8601(*l.row.scheduled_for));
    auto priority = s.priority;
    dispatch(std::move(l), priority);
  }
}

void coordinator::schedule_step() {
  auto db = pool_.borrow();
  if (!db) {
    log_("error", "schedules: " + describe(db.error()));
    return;
  }
  auto now = caf::make_timestamp();
  auto claimed = (*db)->claim_due_schedules(id_, now, now + cfg_.lease, 16);
  if (!claimed) {
    log_("error", "schedules: " + describe(claimed.error()));
    return;
  }
  for (auto& c : *claimed)
    handle_claim(**db, c);
}

// Cancels asked of this coordinator through the store (by another one).
void coordinator::cancel_step() {
  auto db = pool_.borrow();
  if (!db)
    return;
  auto asked = (*db)->cancel_requests(owner_);
  if (!asked || asked->empty())
    return;
  caf::scoped_actor self{actors_->sys};
  for (auto& id : *asked) {
    if (!cancels_sent_.insert(id).second)
      continue;  // sent; the run is on its way out
    self->request(actors_->scheduler, std::chrono::seconds(10), cancel_atom_v, id,
                  std::string("cancelled through the store (asked of coordinator ") + id_
                    + " by another coordinator or troupe cancel)")
      .receive([](bool) {}, [](caf::error&) {});
    log_("info", "run " + id + ": cancelled at a request through the store");
  }
}

void coordinator::reconcile_step() {
  auto db = pool_.borrow();
  if (!db) {
    log_("error", "reconcile: " + describe(db.error()));
    return;
  }
  auto& host = actors_->host.hostname;
  auto unfinished = (*db)->unfinished_runs();
  if (!unfinished) {
    log_("error", "reconcile: " + describe(unfinished.error()));
    return;
  }
  auto now = caf::make_timestamp();
  // Runs still queued whose coordinator died: taken over (one coordinator
  // wins) and started here, under their own id and folder.
  for (auto& r : *unfinished) {
    if (r.status != run_status::queued || r.owner == owner_)
      continue;
    if (!owner_liveness(r, host, now).lost)
      continue;
    auto p = find_pipeline(r.pipeline);
    if (!p)
      continue;  // reconcile() below fails it
    auto won = (*db)->take_over_run(r.run_id, r.owner, r.epoch, owner_, now);
    if (!won || !*won)
      continue;
    if (!r.run_dir.empty())
      make_directories(r.run_dir + "/logs");
    auto prep = prepare(*p, launch_request{r.pipeline, 0, {}, {}, params_of(r), r.launched_by},
                        r.run_id,
                        r.run_dir, r.epoch + 1, r.created_at);
    if (!prep)
      continue;
    ++metrics_.adopted;
    log_("warn", "run " + r.run_id + " was queued by " + r.owner
                   + ", whose process is lost; started here");
    dispatch(std::move(*prep), 0);
  }
  // Running runs of lost owners: resumed here when their pipeline says
  // `resume: true` (its file unchanged in place), else failed interrupted.
  auto resumable = [this](const run_row& r) {
    auto p = find_pipeline(r.pipeline);
    return p && p->resume && p->file == r.pipeline_file;
  };
  auto report = reconcile_as(**db, host, static_cast<int32_t>(::getpid()), owner_, resumable);
  if (!report) {
    log_("error", "reconcile: " + describe(report.error()));
    return;
  }
  for (auto& line : report->messages)
    log_("warn", "recovery: " + line);
  for (auto& run : report->settled)
    if (auto err = settle_metadata(run))
      log_("warn", "recovery: " + describe(err));
  for (auto& r : report->resumes) {
    auto p = find_pipeline(r.run.pipeline);
    if (!p)
      continue;
    auto prep = prepare(*p,
                        launch_request{r.run.pipeline, 0, {}, {}, params_of(r.run),
                                       r.run.launched_by},
                        r.run.run_id, r.run.run_dir, r.run.epoch, r.run.created_at, true);
    if (!prep)
      continue;
    running_order::restore(prep->plan->record, r.jobs, r.attempts);
    log_("warn", "run " + r.run.run_id + " resumed here (resume: true)");
    dispatch(std::move(*prep), 0);
  }
}

// Memory goes back to the system once the queue has drained: glibc keeps
// what a deep queue freed (a coordinator sat at 84 MiB after 5000 queued runs
// had ended; malloc_trim brought it to 37 MiB). Once per busy spell.
void coordinator::trim_when_idle() {
  auto st = scheduler_stats();
  if (!st)
    return;
  if (st->first != 0 || st->second != 0) {
    trim_due_ = true;
    return;
  }
  if (trim_due_) {
    trim_due_ = false;
    ::malloc_trim(0);
  }
}

void coordinator::schedule_loop() {
  auto next_reconcile = std::chrono::steady_clock::now() + cfg_.reconcile_every;
  for (;;) {
    {
      std::unique_lock<std::mutex> guard{loop_mtx_};
      if (loop_stop_)
        return;
    }
    schedule_step();
    cancel_step();
    trim_when_idle();
    if (std::chrono::steady_clock::now() >= next_reconcile) {
      reconcile_step();
      next_reconcile = std::chrono::steady_clock::now() + cfg_.reconcile_every;
    }
    // Until the earliest due schedule (read again each time: another
    // coordinator may have changed them), at most schedule_poll.
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.schedule_poll);
    if (auto db = pool_.borrow()) {
      if (auto all = (*db)->schedules()) {
        auto now = caf::make_timestamp();
        for (auto& s : *all) {
          if (!s.enabled || !s.next_run_at)
            continue;
          auto until = std::chrono::duration_cast<std::chrono::milliseconds>(*s.next_run_at - now);
          // (A due row held by another coordinator: its lease, or the poll.)
          if (until.count() > 0)
            wait = std::min(wait, until + std::chrono::milliseconds(1));
        }
      }
    }
    std::unique_lock<std::mutex> guard{loop_mtx_};
    loop_cv_.wait_for(guard, wait, [&] { return loop_stop_ || loop_poked_; });
    loop_poked_ = false;
  }
}

} // namespace troupe
