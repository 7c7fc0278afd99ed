// Status codes to failure codes, client-rendered pages, titles, and
// Chromium's load errors.
#include "actors/http_judgement.hpp"
#include "adapters/http_client/http_client.hpp"

#include <gtest/gtest.h>

using namespace troupe;

TEST(HttpJudgementTest, StatusCodesAreClassified) {
  EXPECT_EQ(classify_status(200, {}), failure_code::none);
  EXPECT_EQ(classify_status(204, {}), failure_code::none);
  EXPECT_EQ(classify_status(401, {}), failure_code::blocked);
  EXPECT_EQ(classify_status(403, {}), failure_code::blocked);
  EXPECT_EQ(classify_status(429, {}), failure_code::rate_limited);
  EXPECT_EQ(classify_status(500, {}), failure_code::bad_response);
  EXPECT_EQ(classify_status(404, {}), failure_code::bad_response);
  EXPECT_EQ(classify_status(301, {}), failure_code::bad_response) << "not 2xx";
  EXPECT_EQ(classify_status(404, {404}), failure_code::none) << "expected";
  EXPECT_EQ(classify_status(200, {201}), failure_code::bad_response) << "not the expected one";
}

TEST(HttpJudgementTest, ClientRenderedPagesAreRecognised) {
  EXPECT_TRUE(looks_client_rendered(
    R"(<html><head><title>App</title><script src="/app.js"></script></head>)"
    R"(<body><div id="root"></div></body></html>)"));
  EXPECT_TRUE(looks_client_rendered(R"(<body><div id='app'></div><script>x()</script></body>)"));
  EXPECT_FALSE(looks_client_rendered(
    "<html><body><h1>Hello</h1><p>" + std::string(300, 'x') + "</p><script></script></body>"))
    << "plenty of text";
  EXPECT_FALSE(looks_client_rendered("<html><body><div id=\"root\"></div></body></html>"))
    << "no script, nothing would render it";
}

TEST(HttpJudgementTest, Titles) {
  EXPECT_EQ(page_title("<html><head><TITLE>\n  Hello there </TITLE>"), "Hello there");
  EXPECT_EQ(page_title("<html>no title</html>"), "");
}

TEST(HttpJudgementTest, RetryAfterInSecondsOrAsAnHttpDate) {
  auto now = caf::timestamp{std::chrono::seconds(1700000000)};  // 2023-11-14T22:13:20Z
  EXPECT_EQ(parse_retry_after("7", now), caf::timespan{std::chrono::seconds(7)});
  EXPECT_EQ(parse_retry_after("Tue, 14 Nov 2023 22:14:20 GMT", now),
            caf::timespan{std::chrono::seconds(60)});
  EXPECT_EQ(parse_retry_after("soon", now), caf::timespan{0});
}
