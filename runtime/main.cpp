// troupe: the command line. Subcommands live in runtime/*_command.cpp; this
// file only parses flags (CLI11) and dispatches.
#include "runtime/run_command.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  CLI::App app{"troupe: runs pipelines of stages as auditable runs"};
  app.set_version_flag("--version", "troupe 0.1.0");
  app.require_subcommand(1);

  troupe::run_command_options run;
  auto* cmd = app.add_subcommand(
    "run", "Run a pipeline's stages in order, leaving logs, metadata.json and "
           "resource_trace.jsonl in a new run folder.\nExit codes: 0 all stages "
           "succeeded, 1 a stage failed, 2 usage or pipeline error, 3 a stage timed "
           "out, 4 internal error, 130 cancelled.");
  cmd->add_option("pipeline", run.pipeline, "Pipeline file (YAML)")->required();
  cmd->add_option("-o,--output", run.output, "Folder for run folders")
    ->capture_default_str();
  cmd->add_option("-e,--enable", run.enable, "Enable an optional stage (repeatable)");
  cmd->add_flag("-n,--dry-run", run.dry_run,
                "Print the plan and run nothing (also: DRY_RUN=1 in the environment)");
  cmd->add_option("--sample-interval", run.sample_interval,
                  "Interval of periodic resource samples; 0 disables them")
    ->capture_default_str();
  cmd->add_option("--grace", run.grace, "Time between SIGTERM and SIGKILL when a stage is stopped")
    ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (*cmd)
    return troupe::run_command(run);
  return 2;
}
