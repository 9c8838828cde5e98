// Tests for the S3 library's pure parts: s3:// parsing, key and query
// encoding, request URLs, resolving settings from flags, the environment and
// profile files, and the XML S3 answers. The requests themselves are tested
// against a server in s3_server_test.cc.
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <doctest/doctest.h>

#include "shared/aws_config.h"
#include "shared/s3_listing.h"
#include "shared/s3_location.h"
#include "shared/s3_request.h"

namespace thumbmill {
namespace {

TEST_CASE("s3_encode_key keeps A-Za-z0-9-_.~ and '/', encodes every other byte once, uppercase hex") {
  CHECK(s3_encode_key("a b") == "a%20b");
  CHECK(s3_encode_key("x+y=z&w") == "x%2By%3Dz%26w");
  CHECK(s3_encode_key("dir/sub/file.jpg") == "dir/sub/file.jpg");
  CHECK(s3_encode_key("~tilde-_.") == "~tilde-_.");
  CHECK(s3_encode_key("caf\xc3\xa9") == "caf%C3%A9");  // é: two UTF-8 bytes
  CHECK(s3_encode_key("a/../b") == "a/../b");           // kept: PATH_AS_IS sends it as is
  CHECK(s3_encode_key("100%") == "100%25");             // '%' itself: never taken as an escape
  CHECK(s3_encode_key("?#") == "%3F%23");
}

TEST_CASE("s3_encode_query_value also encodes '/', and space as %20, never '+'") {
  CHECK(s3_encode_query_value("t/") == "t%2F");
  CHECK(s3_encode_query_value("a b+c") == "a%20b%2Bc");
  CHECK(s3_encode_query_value("tok+/=") == "tok%2B%2F%3D");  // s3rver's base64 tokens
  CHECK(s3_encode_query_value("~") == "~");
  CHECK(s3_encode_query_value("\xe2\x82\xac") == "%E2%82%AC");
}

TEST_CASE("s3_list_query sorts parameters by name and leaves out empty ones") {
  CHECK(s3_list_query("", "", 1000) == "list-type=2&max-keys=1000");
  CHECK(s3_list_query("t/a b", "", 5) == "list-type=2&max-keys=5&prefix=t%2Fa%20b");
  CHECK(s3_list_query("p/", "x+y/=", 2) == "continuation-token=x%2By%2F%3D&list-type=2&max-keys=2&prefix=p%2F");
}

TEST_CASE("s3_request_url: path style, virtual-hosted, and AWS's endpoint when none is set") {
  S3Settings local;
  local.endpoint = "http://127.0.0.1:4568";
  local.path_style = true;
  CHECK(s3_request_url(local, "photos", "a b/c+d.jpg") == "http://127.0.0.1:4568/photos/a%20b/c%2Bd.jpg");
  CHECK(s3_request_url(local, "photos", "") == "http://127.0.0.1:4568/photos");
  CHECK(s3_request_url(local, "photos", "", "list-type=2") == "http://127.0.0.1:4568/photos?list-type=2");
  S3Settings aws;
  aws.region = "eu-west-3";
  CHECK(s3_request_url(aws, "photos", "k.jpg") == "https://photos.s3.eu-west-3.amazonaws.com/k.jpg");
  S3Settings hosted;
  hosted.endpoint = "https://store.example:9000";
  CHECK(s3_request_url(hosted, "b-1", "x y") == "https://b-1.store.example:9000/x%20y");
}

TEST_CASE("sha256_hex") {
  CHECK(sha256_hex(std::string_view("")) == kEmptySha256);
  CHECK(sha256_hex(std::string_view("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("parse_s3_url takes the key verbatim and checks the bucket") {
  auto ok = parse_s3_url("s3://photos/2026/a b+c=d&e.jpg");
  REQUIRE(ok.ok());
  CHECK(ok->bucket == "photos");
  CHECK(ok->key == "2026/a b+c=d&e.jpg");
  CHECK(ok->url() == "s3://photos/2026/a b+c=d&e.jpg");
  CHECK(parse_s3_url("S3://photos")->key == "");
  CHECK(parse_s3_url("s3://photos/")->key == "");
  CHECK(parse_s3_url("s3://my.bucket-1/%20")->key == "%20");  // no decoding
  CHECK(parse_s3_url("s3://abc/a/../b")->key == "a/../b");
  CHECK(parse_s3_url("s3://abc/caf\xc3\xa9")->key == "caf\xc3\xa9");
  CHECK(is_s3_url("S3://x"));
  CHECK_FALSE(is_s3_url("s3:/x"));
  CHECK_FALSE(is_s3_url("http://x"));

  for (const char* bad : {"s3://", "s3:///key", "s3://ab/k", "s3://Photos/k", "s3://-abc/k", "s3://abc-/k",
                          "s3://a_b_c/k", "s3://a..b/k", "http://127.0.0.1/k", "s3://abc/caf\xc3", "s3://abc/\xff"}) {
    CAPTURE(bad);
    auto r = parse_s3_url(bad);
    CHECK_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
  }
  CHECK_FALSE(parse_s3_url("s3://" + std::string(64, 'a') + "/k").ok());
  CHECK(parse_s3_url("s3://" + std::string(63, 'a') + "/k").ok());
  CHECK_FALSE(parse_s3_url("s3://abc/" + std::string(1025, 'k')).ok());
  CHECK(parse_s3_url("s3://abc/" + std::string(1024, 'k')).ok());
}

TEST_CASE("parse_s3_url refuses control characters and never echoes them") {
  for (std::string key : {std::string("a\nb"), std::string("a\x1b[31m"), std::string("a\x7f"), std::string("a\tb"),
                          std::string("a\0b", 3)}) {
    auto r = parse_s3_url("s3://abc/" + key);
    REQUIRE_FALSE(r.ok());
    const std::string message = r.status().message();
    CHECK(message.find("control character") != std::string::npos);
    for (char c : message) CHECK(static_cast<unsigned char>(c) >= 0x20);
  }
}

/// A temp directory with profile files, and an environment of our own.
struct Profiles {
  std::filesystem::path dir;
  std::map<std::string, std::string> vars;

  Profiles() {
    std::string t = (std::filesystem::temp_directory_path() / "thumbmill-aws-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    dir = t;
    vars["HOME"] = dir.string();
  }
  ~Profiles() { std::filesystem::remove_all(dir); }

  void write(const std::string& relative, const std::string& text) {
    std::filesystem::create_directories((dir / relative).parent_path());
    std::ofstream(dir / relative) << text;
  }
  EnvLookup env() const {
    return [vars = vars](std::string_view name) -> std::optional<std::string> {
      const auto it = vars.find(std::string(name));
      if (it == vars.end()) return std::nullopt;
      return it->second;
    };
  }
  Result<S3Settings> resolve(const S3Flags& flags = {}) const { return resolve_s3_settings(flags, env()); }
};

constexpr const char* kCredentials = R"(# comment
[default]
aws_access_key_id = DEFAULTKEYID0001
aws_secret_access_key = default-secret-value

[work]
aws_access_key_id=WORKKEYID0002
aws_secret_access_key=work-secret-value
aws_session_token = work-token
)";

constexpr const char* kConfig = R"([default]
region = eu-west-1

[profile work]
region = ap-south-1
endpoint_url = http://127.0.0.1:7480/

[profile nested]
region = us-west-2
endpoint_url = http://127.0.0.1:1
s3 =
  endpoint_url = http://localhost:9000
  addressing_style = path
aws_access_key_id = NESTEDKEYID0003
aws_secret_access_key = nested-secret-value
)";

TEST_CASE("resolve_s3_settings: nothing set is anonymous AWS in us-east-1") {
  Profiles p;
  auto s = p.resolve();
  REQUIRE(s.ok());
  CHECK(s->anonymous());
  CHECK(s->endpoint.empty());
  CHECK(s->region == "us-east-1");
  CHECK_FALSE(s->path_style);
}

TEST_CASE("resolve_s3_settings: the default profile from ~/.aws (~ is HOME of the lookup)") {
  Profiles p;
  p.write(".aws/credentials", kCredentials);
  p.write(".aws/config", kConfig);
  auto s = p.resolve();
  REQUIRE(s.ok());
  CHECK(s->access_key_id == "DEFAULTKEYID0001");
  CHECK(s->secret_access_key == "default-secret-value");
  CHECK(s->session_token.empty());
  CHECK(s->region == "eu-west-1");
  CHECK(s->endpoint.empty());
}

TEST_CASE("resolve_s3_settings: AWS_PROFILE picks [NAME] and [profile NAME], endpoint_url included") {
  Profiles p;
  p.write(".aws/credentials", kCredentials);
  p.write(".aws/config", kConfig);
  p.vars["AWS_PROFILE"] = "work";
  auto s = p.resolve();
  REQUIRE(s.ok());
  CHECK(s->access_key_id == "WORKKEYID0002");
  CHECK(s->session_token == "work-token");
  CHECK(s->region == "ap-south-1");
  CHECK(s->endpoint == "http://127.0.0.1:7480");  // trailing '/' removed
  CHECK(s->path_style);                          // an IP address

  p.vars["AWS_PROFILE"] = "nested";  // keys from the config file; nested s3 settings win
  s = p.resolve();
  REQUIRE(s.ok());
  CHECK(s->access_key_id == "NESTEDKEYID0003");
  CHECK(s->endpoint == "http://localhost:9000");
  CHECK(s->region == "us-west-2");
  CHECK(s->path_style);
}

TEST_CASE("resolve_s3_settings: AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE, with ~") {
  Profiles p;
  p.write("elsewhere/creds", kCredentials);
  p.write("elsewhere/conf", kConfig);
  p.write(".aws/credentials", "[work]\naws_access_key_id = WRONG\naws_secret_access_key = WRONG\n");
  p.vars["AWS_SHARED_CREDENTIALS_FILE"] = "~/elsewhere/creds";
  p.vars["AWS_CONFIG_FILE"] = (p.dir / "elsewhere/conf").string();
  p.vars["AWS_PROFILE"] = "work";
  auto s = p.resolve();
  REQUIRE(s.ok());
  CHECK(s->access_key_id == "WORKKEYID0002");
  CHECK(s->region == "ap-south-1");
}

TEST_CASE("resolve_s3_settings: flags > environment > profiles, field by field") {
  Profiles p;
  p.write(".aws/credentials", kCredentials);
  p.write(".aws/config", kConfig);
  p.vars["AWS_PROFILE"] = "work";
  p.vars["AWS_ACCESS_KEY_ID"] = "ENVKEYID00000004";
  p.vars["AWS_SECRET_ACCESS_KEY"] = "env-secret-value";
  p.vars["AWS_DEFAULT_REGION"] = "ca-central-1";
  p.vars["AWS_ENDPOINT_URL"] = "https://general.example";
  auto s = p.resolve();
  REQUIRE(s.ok());
  CHECK(s->access_key_id == "ENVKEYID00000004");
  CHECK(s->secret_access_key == "env-secret-value");
  CHECK(s->session_token.empty());  // the profile's token does not ride along with the environment's keys
  CHECK(s->region == "ca-central-1");
  CHECK(s->endpoint == "https://general.example");
  CHECK_FALSE(s->path_style);

  p.vars["AWS_REGION"] = "sa-east-1";                       // beats AWS_DEFAULT_REGION
  p.vars["AWS_ENDPOINT_URL_S3"] = "HTTP://127.0.0.1:4568";  // beats AWS_ENDPOINT_URL
  p.vars["AWS_SESSION_TOKEN"] = "env-token";
  s = p.resolve();
  REQUIRE(s.ok());
  CHECK(s->region == "sa-east-1");
  CHECK(s->endpoint == "http://127.0.0.1:4568");
  CHECK(s->session_token == "env-token");
  CHECK(s->path_style);

  S3Flags flags;
  flags.endpoint = "https://flag.example:8443";
  flags.region = "eu-north-1";
  flags.path_style = true;
  s = p.resolve(flags);
  REQUIRE(s.ok());
  CHECK(s->endpoint == "https://flag.example:8443");
  CHECK(s->region == "eu-north-1");
  CHECK(s->path_style);
  CHECK(s->access_key_id == "ENVKEYID00000004");  // flags carry no keys
}

TEST_CASE("resolve_s3_settings: errors are clear and carry no secret") {
  Profiles p;
  p.write(".aws/credentials", kCredentials);
  p.write(".aws/config", kConfig);

  p.vars["AWS_PROFILE"] = "nosuch";
  auto s = p.resolve();
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == Code::kInvalidArgument);
  CHECK(s.status().message().find("'nosuch'") != std::string::npos);
  p.vars.erase("AWS_PROFILE");

  p.vars["AWS_SECRET_ACCESS_KEY"] = "half-a-pair-secret";
  s = p.resolve();
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().message() == "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
  p.vars.erase("AWS_SECRET_ACCESS_KEY");

  p.vars["AWS_ENDPOINT_URL"] = "ftp://127.0.0.1";
  CHECK_FALSE(p.resolve().ok());
  p.vars["AWS_ENDPOINT_URL"] = "http://127.0.0.1:4568/some/path";
  CHECK_FALSE(p.resolve().ok());
  p.vars["AWS_ENDPOINT_URL"] = "http://user:endpoint-secret@127.0.0.1:4568";
  s = p.resolve();
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().message().find("endpoint-secret") == std::string::npos);
  p.vars.erase("AWS_ENDPOINT_URL");

  S3Flags flags;
  flags.region = "us-east-1:evil";
  CHECK_FALSE(p.resolve(flags).ok());

  p.write(".aws/credentials", "[default]\naws_access_key_id = ONLYTHEID\n");
  s = p.resolve();
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().message().find("aws_secret_access_key") != std::string::npos);
}

TEST_CASE("S3Settings::describe names the endpoint and the key id's tail, never the secret or token") {
  S3Settings s;
  s.endpoint = "http://127.0.0.1:4568";
  s.path_style = true;
  s.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  s.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  s.session_token = "session-token-value";
  const std::string d = s.describe();
  CHECK(d == "endpoint http://127.0.0.1:4568, region us-east-1, path-style, key ...MPLE with a session token");
  CHECK(d.find("AKIAIOSFODNN7") == std::string::npos);
  S3Settings anonymous;
  CHECK(anonymous.describe() == "endpoint https://s3.us-east-1.amazonaws.com, region us-east-1, anonymous");
}

TEST_CASE("parse_list_objects_v2 decodes entities and reads every field") {
  const std::string xml = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>photos</Name><Prefix>t/</Prefix>
<KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>
<Contents><Key>t/a &amp; b+c=d.jpg</Key><LastModified>2026-01-02T03:04:05.000Z</LastModified>
<ETag>&quot;0123abcd&quot;</ETag><Size>12345678901</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key> t/caf&#233; </Key><Size>0</Size></Contents>
<NextContinuationToken>t/a &amp;amp; b</NextContinuationToken></ListBucketResult>)";
  auto page = parse_list_objects_v2(xml);
  REQUIRE(page.ok());
  REQUIRE(page->objects.size() == 2);
  CHECK(page->objects[0].key == "t/a & b+c=d.jpg");
  CHECK(page->objects[0].size == 12345678901ull);
  CHECK(page->objects[0].etag == "\"0123abcd\"");
  CHECK(page->objects[0].last_modified == "2026-01-02T03:04:05.000Z");
  CHECK(page->objects[1].key == " t/caf\xc3\xa9 ");  // spaces kept
  CHECK(page->truncated);
  CHECK(page->next_token == "t/a &amp; b");  // decoded once, exactly
}

TEST_CASE("parse_list_objects_v2: an empty last page, and what is not a page") {
  auto last = parse_list_objects_v2(
      "<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>");
  REQUIRE(last.ok());
  CHECK(last->objects.empty());
  CHECK_FALSE(last->truncated);
  CHECK(last->next_token.empty());

  auto endless = parse_list_objects_v2(
      "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>k</Key><Size>1</Size></Contents>"
      "</ListBucketResult>");
  REQUIRE_FALSE(endless.ok());
  CHECK(endless.status().message().find("NextContinuationToken") != std::string::npos);

  auto error = parse_list_objects_v2(
      "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist"
      "</Message></Error>");
  REQUIRE_FALSE(error.ok());
  CHECK(error.status().message().find("NoSuchBucket") != std::string::npos);

  for (const char* bad : {"", "<html><body>proxy error</body></html>", "<ListBucketResult><Contents><Key>k",
                          "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
                          "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
                          "not xml at all"}) {
    CAPTURE(bad);
    auto r = parse_list_objects_v2(bad);
    CHECK_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
  }
}

TEST_CASE("parse_list_objects_v2 loads no external entity") {
  const std::string secret_path = "/etc/hostname";
  auto r = parse_list_objects_v2("<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file://" + secret_path +
                                 "\">]><ListBucketResult><Contents><Key>&e;</Key><Size>1</Size></Contents>"
                                 "<IsTruncated>false</IsTruncated></ListBucketResult>");
  if (r.ok()) {
    REQUIRE(r->objects.size() == 1);
    CHECK(r->objects[0].key.empty());  // the entity left unexpanded
  }
}

TEST_CASE("s3_error_summary reads an <Error> body and nothing else") {
  CHECK(s3_error_summary(404, "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified "
                              "bucket does not exist</Message><BucketName>x</BucketName></Error>") ==
        "HTTP 404 NoSuchBucket: The specified bucket does not exist");
  CHECK(s3_error_summary(403, "<Error><Code>AccessDenied</Code></Error>") == "HTTP 403 AccessDenied");
  CHECK(s3_error_summary(404, "") == "HTTP 404");
  CHECK(s3_error_summary(502, "<html><body><Error>not xml</body></html>") == "HTTP 502");
  CHECK(s3_error_summary(500, "Internal <Error> secret-ish text") == "HTTP 500");
  // A line break or escape from the server does not reach a log.
  CHECK(s3_error_summary(400, "<Error><Code>Bad</Code><Message>a\nb\tc</Message></Error>") ==
        "HTTP 400 Bad: a b c");
}

}  // namespace
}  // namespace thumbmill
