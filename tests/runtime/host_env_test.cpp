// What a stage inherits from troupe: never troupe's own secrets, and an API
// caller's env only through the pipeline's api_env.
#include "runtime/host_env.hpp"

#include "messages/json.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

using namespace troupe;

TEST(HostEnvTest, TroupesSecretsAndCopiesOfThemAreNotInherited) {
  ::setenv("TROUPE_TOKEN", "s3cret-token-value", 1);
  ::setenv("TROUPE_TOKEN_FILE", "/etc/troupe/token", 1);
  ::setenv("PGPASSWORD", "pgpw", 1);
  ::setenv("COPIED_TOKEN", "s3cret-token-value", 1);
  ::setenv("AUTH_HEADER", "Bearer s3cret-token-value", 1);
  ::setenv("HARMLESS_VALUE", "hello", 1);
  auto env = stage_inheritance({"s3cret-token-value", "pw"});
  for (auto name : {"TROUPE_TOKEN", "TROUPE_TOKEN_FILE", "PGPASSWORD", "COPIED_TOKEN",
                    "AUTH_HEADER"})
    EXPECT_EQ(env.count(name), 0u) << name;
  EXPECT_EQ(env["HARMLESS_VALUE"], "hello");
  EXPECT_EQ(env.count("PATH"), 1u) << "the author's programs still need PATH";
  // A short secret inside a longer value is chance, not a copy ("pw" in "pwd").
  ::setenv("SHORT_CHANCE", "pwd", 1);
  EXPECT_EQ(stage_inheritance({"pw"}).count("SHORT_CHANCE"), 1u);
  for (auto name : {"TROUPE_TOKEN", "TROUPE_TOKEN_FILE", "PGPASSWORD", "COPIED_TOKEN",
                    "AUTH_HEADER", "HARMLESS_VALUE", "SHORT_CHANCE"})
    ::unsetenv(name);
}

TEST(HostEnvTest, AStoreUrlsPasswordIsASecret) {
  EXPECT_EQ(store_url_secrets("postgresql://troupe:hunter22@db:5432/troupe"),
            std::vector<std::string>{"hunter22"});
  EXPECT_EQ(store_url_secrets("host=db user=troupe password=hunter22 dbname=t"),
            std::vector<std::string>{"hunter22"});
  EXPECT_EQ(store_url_secrets("postgresql://db/troupe?password=hunter22&sslmode=require"),
            std::vector<std::string>{"hunter22"});
  EXPECT_TRUE(store_url_secrets("postgresql://troupe@db/troupe").empty());
  EXPECT_TRUE(store_url_secrets("output/troupe.db").empty());
}

TEST(HostEnvTest, LoaderAndShellVariablesAreNamed) {
  for (auto name : {"LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "BASH_ENV", "ENV", "PATH", "IFS",
                    "BASH_FUNC_ls%%", "PYTHONPATH", "NODE_OPTIONS", "PERL5OPT", "GCONV_PATH"})
    EXPECT_TRUE(is_loader_or_shell(name)) << name;
  for (auto name : {"BATCH", "MODEL", "LOG_LEVEL", "LDAP_HOST", "PATHS"})
    EXPECT_FALSE(is_loader_or_shell(name)) << name;
  EXPECT_TRUE(is_troupe_secret("TROUPE_DB"));
  EXPECT_FALSE(is_troupe_secret("TROUPEX"));
}

TEST(RfcTimeTest, StrictNoRolloverAndOffsets) {
  std::string why;
  EXPECT_FALSE(parse_iso8601("2026-13-45T25:61:61Z", &why));
  EXPECT_EQ(why, "month 13 is not 1-12");
  EXPECT_FALSE(parse_iso8601("2026-02-29T00:00:00Z", &why));
  EXPECT_EQ(why, "day 29 is not in 2026-02 (1-28)");
  EXPECT_TRUE(parse_iso8601("2028-02-29T00:00:00Z"));
  EXPECT_FALSE(parse_iso8601("2026-04-31T00:00:00Z"));
  EXPECT_FALSE(parse_iso8601("2026-01-01T23:60:00Z", &why));
  EXPECT_EQ(why, "minute 60 is not 0-59");
  EXPECT_FALSE(parse_iso8601("2026-01-01T00:00:00", &why));
  EXPECT_FALSE(parse_iso8601("2026-01-01T00:00:00.Z"));
  EXPECT_FALSE(parse_iso8601("2026-01-01T00:00:00Zjunk"));
  EXPECT_FALSE(parse_iso8601("9999-12-31T23:59:59Z", &why));
  EXPECT_NE(why.find("2262-04-11"), std::string::npos) << why;
  auto a = parse_iso8601("2026-11-24T10:30:00+01:00");
  auto b = parse_iso8601("2026-11-24T09:30:00Z");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(iso8601(*parse_iso8601("1969-12-31T23:59:59.5Z")), "1969-12-31T23:59:59.500Z");
  auto now = caf::make_timestamp();
  auto back = parse_iso8601(iso8601(now));
  ASSERT_TRUE(back);
  EXPECT_LT(std::chrono::abs(*back - now), std::chrono::milliseconds(1));
}
