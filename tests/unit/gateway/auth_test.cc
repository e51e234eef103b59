// Access control: the method table (gateway/methods.h), scope implication, method-name and
// legacy grants, bearer tokens and HS256 JWTs.
#include "gateway/auth.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "gateway/methods.h"
#include "smithers/json.h"

namespace smithers::gateway {
namespace {

TEST(AuthTest, EveryMethodHasOneKnownScopeAndUnlistedMethodsNeedRunRead) {
  std::set<std::string_view> seen;
  for (const Method& m : Methods()) {
    EXPECT_TRUE(seen.insert(m.name).second) << m.name << " listed twice";
    EXPECT_TRUE(IsKnownScope(m.scope)) << m.name;
    EXPECT_EQ(RequiredScope(m.name), m.scope);
    EXPECT_NE(m.handler == nullptr, m.deferred == nullptr) << m.name << ": one handler";
    EXPECT_EQ(FindMethod(m.name), &m);
  }
  EXPECT_EQ(FindMethod("somethingNew"), nullptr);
  // The table's transport and subscription columns, as documented.
  EXPECT_TRUE(FindMethod("streamRunEvents")->needs_connection);
  EXPECT_TRUE(FindMethod("unsubscribe")->needs_connection);
  EXPECT_FALSE(FindMethod("getRun")->needs_connection);
  // What waits for a run's thread replies later, never on the io thread.
  for (const char* waits : {"launchRun", "resumeRun", "cronRun"}) {
    EXPECT_NE(FindMethod(waits)->deferred, nullptr) << waits;
  }
  EXPECT_EQ(FindMethod("launchRun")->auto_subscribe, AutoSubscribe::kFromStart);
  EXPECT_EQ(FindMethod("cronRun")->auto_subscribe, AutoSubscribe::kFromStart);
  EXPECT_EQ(FindMethod("submitSignal")->auto_subscribe, AutoSubscribe::kFromNow);
  EXPECT_EQ(FindMethod("resumeRun")->auto_subscribe, AutoSubscribe::kNo);
  EXPECT_EQ(RequiredScope("launchRun"), "run:write");
  EXPECT_EQ(RequiredScope("submitApproval"), "approval:submit");
  EXPECT_EQ(RequiredScope("somethingNew"), "run:read");
}

TEST(AuthTest, ScopesImplyTheirLesserScopesOnly) {
  auto allows = [](const std::vector<std::string>& granted, const char* method) {
    return ScopesAllow(granted, method, RequiredScope(method));
  };
  EXPECT_TRUE(allows({"run:admin"}, "getRun"));
  EXPECT_TRUE(allows({"run:admin"}, "launchRun"));
  EXPECT_TRUE(allows({"run:write"}, "getRun"));
  EXPECT_FALSE(allows({"run:read"}, "launchRun"));
  EXPECT_TRUE(allows({"cron:write"}, "cronList"));
  EXPECT_FALSE(allows({"cron:read"}, "cronCreate"));
  EXPECT_TRUE(allows({"approval:submit"}, "listApprovals"));
  EXPECT_FALSE(allows({"approval:read"}, "submitApproval"));
  // launching never implies deciding
  EXPECT_FALSE(allows({"run:admin"}, "submitApproval"));
  EXPECT_FALSE(allows({"run:write", "signal:submit"}, "submitApproval"));
  EXPECT_TRUE(allows({"*"}, "submitApproval"));
  EXPECT_FALSE(allows({}, "health"));
}

TEST(AuthTest, MethodNameAndWildcardGrants) {
  EXPECT_TRUE(ScopesAllow({"getRun"}, "getRun", "run:read"));
  EXPECT_FALSE(ScopesAllow({"getRun"}, "listRuns", "run:read"));
  EXPECT_TRUE(ScopesAllow({"cron*"}, "cronDelete", "cron:write"));
  EXPECT_TRUE(ScopesAllow({"cron.*"}, "cronList", "cron:read"));
  EXPECT_FALSE(ScopesAllow({"cron*"}, "getRun", "run:read"));
  // A name grant is honoured only if the method's own scope covers the need.
  EXPECT_FALSE(ScopesAllow({"getRun"}, "getRun", "run:write"));
  EXPECT_FALSE(ScopesAllow({"*x"}, "getRun", "run:read"));
}

TEST(AuthTest, LegacyRankedGrants) {
  EXPECT_TRUE(ScopesAllow({"read"}, "cronList", "cron:read"));
  EXPECT_TRUE(ScopesAllow({"read"}, "listApprovals", "approval:read"));
  EXPECT_FALSE(ScopesAllow({"read"}, "launchRun", "run:write"));
  EXPECT_TRUE(ScopesAllow({"execute"}, "launchRun", "run:write"));
  EXPECT_TRUE(ScopesAllow({"execute"}, "submitSignal", "signal:submit"));
  EXPECT_FALSE(ScopesAllow({"execute"}, "submitApproval", "approval:submit"));
  EXPECT_TRUE(ScopesAllow({"approve"}, "submitApproval", "approval:submit"));
  EXPECT_TRUE(ScopesAllow({"admin"}, "cronDelete", "cron:write"));
}

TEST(AuthTest, ContentNeedsItsScopeBesidesTheMethods) {
  for (const ContentScope& c : ContentScopes()) {
    EXPECT_TRUE(IsKnownScope(c.scope)) << c.content;
    EXPECT_EQ(RequiredScope(c.method), c.scope) << c.content;
  }
  const std::vector<std::string> reader = {"run:read"};
  EXPECT_FALSE(MaySee(reader, "snapshot.approvals"));
  EXPECT_FALSE(MaySee(reader, "event.ApprovalRequested"));
  EXPECT_FALSE(MaySee(reader, "output.approvalDecision"));
  EXPECT_FALSE(MaySee(reader, "push.cron.triggered"));
  EXPECT_TRUE(MaySee(reader, "snapshot.runs"));
  EXPECT_TRUE(MaySee(reader, "event.NodeFinished"));  // not listed: the method's scope decides
  for (const std::vector<std::string>& g : {std::vector<std::string>{"approval:read"},
                                            {"approval:submit"},
                                            {"listApprovals"},
                                            {"*"},
                                            {"approve"},
                                            {"read"}}) {
    EXPECT_TRUE(MaySee(g, "snapshot.approvals")) << g[0];
    EXPECT_TRUE(MaySee(g, "event.ApprovalGranted")) << g[0];
  }
  EXPECT_TRUE(MaySee({"cron:read"}, "push.cron.triggered"));
  EXPECT_TRUE(MaySee({"cron:write"}, "push.cron.triggered"));
  EXPECT_FALSE(MaySee({"cron:read"}, "snapshot.runs"));
  EXPECT_EQ(ContentRequiredScope("event.ApprovalDenied"), "approval:read");
  EXPECT_EQ(ContentRequiredScope("event.NodeFinished"), "");
}

TEST(AuthTest, MintedTokensAreUniqueAndOnlyTheirHashIsKept) {
  std::set<std::string> tokens;
  for (int i = 0; i < 50; ++i) {
    Result<MintedToken> t = MintToken();
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->token.size(), 9u + 43u);
    EXPECT_EQ(t->token.rfind("smithers_", 0), 0u);
    EXPECT_EQ(t->hash, TokenHash(t->token));
    EXPECT_EQ(t->hash.size(), 64u);
    EXPECT_EQ(t->id, t->hash.substr(0, 16));
    EXPECT_EQ(t->hash.find(t->token.substr(9)), std::string::npos);
    EXPECT_TRUE(tokens.insert(t->token).second);
  }
}

TEST(AuthTest, Base64UrlRoundTripsAndRejectsOtherAlphabets) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\x00\x01"}) {
    std::string back;
    ASSERT_TRUE(Base64UrlDecode(Base64UrlEncode(s), &back));
    EXPECT_EQ(back, s);
  }
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  std::string out;
  EXPECT_FALSE(Base64UrlDecode("ab+/", &out));
  EXPECT_FALSE(Base64UrlDecode("abc=", &out));
  EXPECT_FALSE(Base64UrlDecode("a", &out));
  EXPECT_FALSE(Base64UrlDecode("c21pdG", &out));  // non-zero unused bits (found by fuzzing)
  EXPECT_TRUE(Base64UrlDecode("c21pdA", &out));
}

// A JWT signed with `secret`.
std::string Jwt(const Json& claims, const std::string& secret, const std::string& alg = "HS256") {
  std::string head = Base64UrlEncode(Json({{"alg", alg}, {"typ", "JWT"}}).dump());
  std::string body = Base64UrlEncode(claims.dump());
  return head + "." + body + "." + Base64UrlEncode(HmacSha256(secret, head + "." + body));
}

TEST(AuthTest, JwtChecksSignatureTimesIssuerAudienceAndReadsScopes) {
  const int64_t now = 1800000000000;  // ms
  JwtConfig cfg{.secret = "s3cret", .issuer = "idp", .audience = "smithers"};
  Json claims = {{"sub", "alice"},
                 {"iss", "idp"},
                 {"aud", "smithers"},
                 {"exp", now / 1000 + 60},
                 {"scope", "run:read, cron:read approval:submit"}};
  Result<JwtClaims> ok = VerifyJwt(Jwt(claims, "s3cret"), cfg, now);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->subject, "alice");
  EXPECT_EQ(ok->role, "operator");
  EXPECT_EQ(ok->scopes, (std::vector<std::string>{"run:read", "cron:read", "approval:submit"}));
  EXPECT_EQ(ok->expires_at_ms, (now / 1000 + 60) * 1000);

  EXPECT_FALSE(VerifyJwt(Jwt(claims, "other"), cfg, now).ok());
  EXPECT_FALSE(VerifyJwt(Jwt(claims, "s3cret", "none"), cfg, now).ok());
  EXPECT_FALSE(VerifyJwt(Jwt(claims, "s3cret", "HS512"), cfg, now).ok());
  // exp with the 60 s skew
  EXPECT_TRUE(VerifyJwt(Jwt(claims, "s3cret"), cfg, now + 100000).ok());
  EXPECT_FALSE(VerifyJwt(Jwt(claims, "s3cret"), cfg, now + 121000).ok());
  Json early = claims;
  early["nbf"] = now / 1000 + 600;
  EXPECT_FALSE(VerifyJwt(Jwt(early, "s3cret"), cfg, now).ok());
  Json wrong_iss = claims;
  wrong_iss["iss"] = "evil";
  EXPECT_FALSE(VerifyJwt(Jwt(wrong_iss, "s3cret"), cfg, now).ok());
  Json aud_list = claims;
  aud_list["aud"] = {"x", "smithers"};
  EXPECT_TRUE(VerifyJwt(Jwt(aud_list, "s3cret"), cfg, now).ok());
  aud_list["aud"] = {"x"};
  EXPECT_FALSE(VerifyJwt(Jwt(aud_list, "s3cret"), cfg, now).ok());
  Json arr = claims;
  arr["scope"] = {"run:write"};
  arr["role"] = "admin";
  Result<JwtClaims> r = VerifyJwt(Jwt(arr, "s3cret"), cfg, now);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->scopes, std::vector<std::string>{"run:write"});
  EXPECT_EQ(r->role, "admin");
  // a tampered payload with the old signature
  std::string token = Jwt(claims, "s3cret");
  size_t d1 = token.find('.'), d2 = token.rfind('.');
  Json forged = claims;
  forged["scope"] = "*";
  std::string tampered =
      token.substr(0, d1 + 1) + Base64UrlEncode(forged.dump()) + token.substr(d2);
  EXPECT_FALSE(VerifyJwt(tampered, cfg, now).ok());
  EXPECT_FALSE(VerifyJwt("a.b", cfg, now).ok());
  EXPECT_FALSE(VerifyJwt("a.b.c.d", cfg, now).ok());
  // no scope claim: the configured defaults
  JwtConfig defaults = cfg;
  defaults.default_scopes = {"run:read"};
  Json bare = claims;
  bare.erase("scope");
  EXPECT_EQ(VerifyJwt(Jwt(bare, "s3cret"), defaults, now)->scopes,
            std::vector<std::string>{"run:read"});
}

TEST(AuthTest, TokenTtlsAreBoundedAndNeverOverflow) {
  const int64_t max = kDefaultMaxTokenTtlMs;
  EXPECT_EQ(max, 30LL * 86400000);
  EXPECT_EQ(ParseTokenTtl("1h", max).value(), 3600000);
  EXPECT_EQ(ParseTokenTtl("30d", max).value(), max);
  for (const char* bad : {"never", "0", "0s", "-1h", "1w", "", "99999999999999d",
                          "9223372036854775808", "31d", "2592000001"}) {
    EXPECT_FALSE(ParseTokenTtl(bad, max).ok()) << bad;
  }
  EXPECT_NE(ParseTokenTtl("never", max).status().message().find("--no-expiry"), std::string::npos);
  EXPECT_NE(ParseTokenTtl("31d", max).status().message().find("maximum token lifetime 30d"),
            std::string::npos);
  EXPECT_NE(ParseTokenTtl("99999999999999d", max).status().message().find("not a duration"),
            std::string::npos);
  EXPECT_EQ(ParseTokenTtl("90d", 90 * 86400000LL).value(), 90 * 86400000LL);
  EXPECT_FALSE(ParseMaxTokenTtl("0").ok());
  EXPECT_FALSE(ParseMaxTokenTtl("99999999999999d").ok());
  EXPECT_EQ(ParseMaxTokenTtl("12h").value(), 12 * 3600000);
  EXPECT_EQ(FormatDurationMs(max), "30d");
  EXPECT_EQ(FormatDurationMs(90 * 60000), "90m");
  EXPECT_EQ(FormatDurationMs(1500), "1500ms");
}

TEST(AuthTest, GrantLifetimesMustExpireWithinTheMaximum) {
  const int64_t day = 86400000, now = 100 * day, max = 30 * day;
  EXPECT_TRUE(CheckGrantLifetime(0, now + day, max, now).ok());
  EXPECT_TRUE(CheckGrantLifetime(now - 29 * day, now + day, max, now).ok());
  EXPECT_TRUE(CheckGrantLifetime(0, 1, max, now).ok());  // long expired: just expired
  EXPECT_FALSE(CheckGrantLifetime(0, 0, max, now).ok());
  EXPECT_FALSE(CheckGrantLifetime(0, now + 31 * day, max, now).ok());
  EXPECT_FALSE(CheckGrantLifetime(now - 40 * day, now + day, max, now).ok());
  // issuedAtMs in the future is counted from now
  EXPECT_FALSE(CheckGrantLifetime(now + 10 * day, now + 35 * day, max, now).ok());
  EXPECT_FALSE(CheckGrantLifetime(0, INT64_MAX, max, -INT64_MAX).ok());  // no overflow
}

TEST(AuthTest, TrustedProxyPeersByAddressOrBlock) {
  std::vector<std::string> peers = {"127.0.0.1", "10.0.0.0/8", "fd00::/8", "192.168.1.0/25"};
  EXPECT_TRUE(CheckPeerList(peers).ok());
  EXPECT_TRUE(PeerAllowed(peers, "127.0.0.1"));
  EXPECT_TRUE(PeerAllowed(peers, "::ffff:127.0.0.1"));  // IPv4-mapped
  EXPECT_TRUE(PeerAllowed(peers, "10.200.3.4"));
  EXPECT_TRUE(PeerAllowed(peers, "fd12::1"));
  EXPECT_TRUE(PeerAllowed(peers, "192.168.1.127"));
  EXPECT_FALSE(PeerAllowed(peers, "192.168.1.128"));
  EXPECT_FALSE(PeerAllowed(peers, "127.0.0.2"));
  EXPECT_FALSE(PeerAllowed(peers, "11.0.0.1"));
  EXPECT_FALSE(PeerAllowed(peers, "fe80::1"));
  EXPECT_FALSE(PeerAllowed(peers, "::1"));
  EXPECT_FALSE(PeerAllowed(peers, ""));
  EXPECT_FALSE(PeerAllowed(peers, "?"));
  EXPECT_FALSE(PeerAllowed({}, "127.0.0.1"));
  EXPECT_TRUE(PeerAllowed({"0.0.0.0/0"}, "8.8.8.8"));
  EXPECT_TRUE(PeerAllowed({"::/0"}, "2001:db8::1"));
  for (const char* bad : {"banana", "10.0.0.0/33", "::1/129", "10.0.0.0/", "10.0.0.0/x",
                          "10.0.0.0/-1", "1.2.3.4:80"}) {
    EXPECT_FALSE(CheckPeerList({bad}).ok()) << bad;
    EXPECT_FALSE(PeerAllowed({bad}, "10.0.0.1")) << bad;
  }
}

}  // namespace
}  // namespace smithers::gateway
