#include "actors/http_judgement.hpp"

#include <algorithm>
#include <cctype>
#include <regex>

namespace troupe {

failure_code classify_status(int32_t status, const std::vector<int32_t>& expect) {
  bool ok = expect.empty() ? (status >= 200 && status < 300)
                           : std::find(expect.begin(), expect.end(), status) != expect.end();
  if (ok)
    return failure_code::none;
  if (status == 401 || status == 403)
    return failure_code::blocked;
  if (status == 429)
    return failure_code::rate_limited;
  return failure_code::bad_response;
}

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Text a reader would see: no tags, scripts, styles or whitespace runs.
size_t visible_chars(const std::string& html) {
  static const std::regex hidden(R"(<(script|style|noscript|template)\b[^>]*>[\s\S]*?</\1\s*>)",
                                 std::regex::icase);
  static const std::regex head(R"(<head\b[^>]*>[\s\S]*?</head\s*>)", std::regex::icase);
  static const std::regex tags(R"(<[^>]*>)");
  auto text = std::regex_replace(html, hidden, " ");
  text = std::regex_replace(text, head, " ");
  text = std::regex_replace(text, tags, " ");
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](unsigned char c) {
    return !std::isspace(c);
  }));
}

} // namespace

bool looks_client_rendered(const std::string& html) {
  auto h = lower(html.substr(0, 64 * 1024));
  if (h.find("<script") == std::string::npos)
    return false;
  if (visible_chars(h) > 200)
    return false;
  static const std::regex empty_root(
    R"(<(div|main|section|body)\b[^>]*\bid\s*=\s*["']?(root|app|__next|__nuxt|main)["']?[^>]*>\s*</)");
  return std::regex_search(h, empty_root) || visible_chars(h) < 20;
}

std::string page_title(const std::string& html) {
  static const std::regex title(R"(<title\b[^>]*>([\s\S]*?)</title\s*>)", std::regex::icase);
  std::smatch m;
  if (!std::regex_search(html, m, title))
    return {};
  auto t = m[1].str();
  auto b = t.find_first_not_of(" \t\r\n");
  auto e = t.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string{} : t.substr(b, e - b + 1);
}

} // namespace troupe
