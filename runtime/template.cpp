#include "runtime/template.hpp"

namespace troupe {

namespace {

bool name_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
         || ch == '_' || ch == '-';
}

bool known_space(const std::string& s) {
  return s == "params" || s == "matrix" || s == "run" || s == "stage" || s == "env";
}

// Walks `text`: `on_text` gets literal pieces, `on_ref` each reference.
// False (with `*problem`) on a malformed reference.
template <class Text, class Ref>
bool scan(const std::string& text, Text on_text, Ref on_ref, std::string* problem) {
  size_t i = 0;
  while (i < text.size()) {
    auto at = text.find('$', i);
    if (at == std::string::npos) {
      on_text(text.substr(i));
      return true;
    }
    on_text(text.substr(i, at - i));
    if (text.compare(at, 3, "$${") == 0) {  // an escaped `${`
      on_text("${");
      i = at + 3;
      continue;
    }
    if (text.compare(at, 2, "${") != 0) {
      on_text("$");
      i = at + 1;
      continue;
    }
    // `${` then letters, a dot: a reference; without a dot, the shell's.
    size_t p = at + 2;
    while (p < text.size() && name_char(text[p]))
      ++p;
    if (p >= text.size() || text[p] != '.') {
      on_text("${");
      i = at + 2;
      continue;
    }
    template_ref ref;
    ref.space = text.substr(at + 2, p - at - 2);
    size_t q = p + 1;
    while (q < text.size() && (name_char(text[q]) || text[q] == '.'))
      ++q;
    ref.name = text.substr(p + 1, q - p - 1);
    auto shown = text.substr(at, std::min(q + 1, text.size()) - at);
    if (q >= text.size() || text[q] != '}') {
      if (problem)
        *problem = "'" + shown + "' has no closing '}'";
      return false;
    }
    if (!known_space(ref.space)) {
      if (problem)
        *problem = "unknown reference '" + shown
                   + "' (known: params.NAME, matrix.NAME, run.id, run.dir, stage.name, "
                     "env.NAME; write $${ for a literal ${)";
      return false;
    }
    if (ref.name.empty()) {
      if (problem)
        *problem = "'" + shown + "' names nothing after the dot";
      return false;
    }
    on_ref(ref);
    i = q + 1;
  }
  return true;
}

} // namespace

std::vector<template_ref> template_refs(const std::string& text, std::string* problem) {
  std::vector<template_ref> refs;
  scan(text, [](const std::string&) {}, [&](const template_ref& r) { refs.push_back(r); },
       problem);
  return refs;
}

std::string expand_template(
  const std::string& text,
  const std::function<std::optional<std::string>(const template_ref&)>& lookup) {
  std::string out;
  out.reserve(text.size());
  scan(text, [&](const std::string& piece) { out += piece; },
       [&](const template_ref& r) {
         auto v = lookup(r);
         out += v ? *v : r.text();
       },
       nullptr);
  return out;
}

} // namespace troupe
