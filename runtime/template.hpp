// Templates in pipeline fields: `${params.limit}`, `${matrix.shard}`,
// `${run.id}`, `${run.dir}`, `${stage.name}`, `${env.HOME}`. Only `${` a
// namespace `.` a name `}` is a reference; anything else (`$HOME`,
// `${HOME}`, `$(cmd)`) is left alone for the shell; `$${` writes `${`.
// Checked when the pipeline is read (template_refs), substituted when a run
// is planned (expand_template).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

/// One reference: its namespace and name (`params`, `limit`).
struct template_ref {
  std::string space;
  std::string name;
  std::string text() const { return "${" + space + "." + name + "}"; }
};

/// The references in `text`, in order; a malformed one (`${params.}`,
/// `${params.x` without `}`, an unknown namespace such as `${foo.bar}`) is
/// described in `*problem` and ends the scan.
std::vector<template_ref> template_refs(const std::string& text, std::string* problem);

/// `text` with every reference replaced by `lookup(ref)`; a reference it
/// answers with nothing stays as written (the caller checked them first).
std::string expand_template(const std::string& text,
                            const std::function<std::optional<std::string>(const template_ref&)>& lookup);

} // namespace troupe
