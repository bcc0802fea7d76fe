#include <string>
#include <vector>

#include "export_cache/exports_parser.h"
#include "gtest/gtest.h"

namespace localnfs::exports {
namespace {

std::vector<ExportSpec> ParseOk(const std::string& text) {
  absl::StatusOr<std::vector<ExportSpec>> specs = ParseExports(text, "exports");
  EXPECT_TRUE(specs.ok()) << specs.status();
  return specs.ok() ? *specs : std::vector<ExportSpec>();
}

std::string ParseError(const std::string& text) {
  absl::StatusOr<std::vector<ExportSpec>> specs = ParseExports(text, "exports");
  EXPECT_FALSE(specs.ok());
  EXPECT_EQ(specs.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(specs.status().message());
}

ExportOptions OptionsOf(const std::string& opts) {
  std::vector<ExportSpec> specs = ParseOk("/srv *(" + opts + ")\n");
  EXPECT_EQ(specs.size(), 1u);
  return specs.empty() ? ExportOptions() : specs[0].rules[0].options;
}

TEST(ParseExportsTest, LineWithSeveralClients) {
  std::vector<ExportSpec> specs =
      ParseOk("/srv/data 10.1.2.3(rw,no_root_squash) 10.0.0.0/8(ro) *(ro,all_squash)\n");
  ASSERT_EQ(specs.size(), 1u);
  const ExportSpec& s = specs[0];
  EXPECT_EQ(s.path, "/srv/data");
  EXPECT_EQ(s.line, 1);
  EXPECT_EQ(s.file, "exports");
  ASSERT_EQ(s.rules.size(), 3u);
  EXPECT_EQ(s.rules[0].pattern.kind, ClientPattern::Kind::kAddress);
  EXPECT_EQ(s.rules[0].options.squash, Squash::kNone);
  EXPECT_FALSE(s.rules[0].options.read_only);
  EXPECT_EQ(s.rules[1].pattern.kind, ClientPattern::Kind::kCidr);
  EXPECT_EQ(s.rules[1].pattern.prefix_len, 8);
  EXPECT_TRUE(s.rules[1].options.read_only);
  EXPECT_EQ(s.rules[2].pattern.kind, ClientPattern::Kind::kAnyone);
  EXPECT_EQ(s.rules[2].options.squash, Squash::kAll);
}

TEST(ParseExportsTest, Defaults) {
  ExportOptions o = OptionsOf("");
  EXPECT_EQ(o, ExportOptions());
  EXPECT_FALSE(o.read_only);
  EXPECT_EQ(o.squash, Squash::kRoot);
  EXPECT_EQ(o.anonuid, kNobodyUid);
  EXPECT_EQ(o.anongid, kNobodyGid);
  EXPECT_FALSE(o.secure);
  EXPECT_FALSE(o.fsid.has_value());
  EXPECT_TRUE(o.sync);
}

TEST(ParseExportsTest, EveryOption) {
  EXPECT_TRUE(OptionsOf("ro").read_only);
  EXPECT_FALSE(OptionsOf("ro,rw").read_only);
  EXPECT_EQ(OptionsOf("no_root_squash").squash, Squash::kNone);
  EXPECT_EQ(OptionsOf("no_root_squash,root_squash").squash, Squash::kRoot);
  EXPECT_EQ(OptionsOf("all_squash").squash, Squash::kAll);
  EXPECT_EQ(OptionsOf("all_squash,no_all_squash").squash, Squash::kRoot);
  EXPECT_EQ(OptionsOf("anonuid=1000").anonuid, 1000u);
  EXPECT_EQ(OptionsOf("anongid=4294967295").anongid, 4294967295u);
  EXPECT_TRUE(OptionsOf("secure").secure);
  EXPECT_FALSE(OptionsOf("secure,insecure").secure);
  EXPECT_EQ(OptionsOf("fsid=42").fsid, 42u);
  EXPECT_FALSE(OptionsOf("async").sync);
  EXPECT_TRUE(OptionsOf("async,sync").sync);
  EXPECT_FALSE(OptionsOf("sync,async").sync);
  EXPECT_EQ(OptionsOf("async,sync,no_subtree_check,subtree_check,wdelay,no_wdelay,"
                      "crossmnt,nohide"),
            ExportOptions());
}

TEST(ParseExportsTest, BlanksInsideOptionsAreIgnored) {
  std::vector<ExportSpec> specs = ParseOk("/srv host1.invalid(ro, sync)\n");
  ASSERT_EQ(specs.size(), 1u);
  EXPECT_TRUE(specs[0].rules[0].options.read_only);
}

TEST(ParseExportsTest, CommentsAndBlankLines) {
  std::vector<ExportSpec> specs = ParseOk(
      "# exports for the test\n"
      "\n"
      "   \t\n"
      "/a *(ro)   # trailing comment (rw)\n"
      "#/b *(rw)\n"
      "/c\n");
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_EQ(specs[0].path, "/a");
  EXPECT_EQ(specs[0].line, 4);
  EXPECT_TRUE(specs[0].rules[0].options.read_only);
  EXPECT_EQ(specs[1].path, "/c");
  EXPECT_EQ(specs[1].line, 6);
}

TEST(ParseExportsTest, ContinuationLines) {
  std::vector<ExportSpec> specs = ParseOk(
      "/a \\\n"
      "   10.0.0.1(ro) \\\n"
      "   10.0.0.2(rw)\n"
      "/b *(ro)\n");
  ASSERT_EQ(specs.size(), 2u);
  ASSERT_EQ(specs[0].rules.size(), 2u);
  EXPECT_TRUE(specs[0].rules[0].options.read_only);
  EXPECT_FALSE(specs[0].rules[1].options.read_only);
  EXPECT_EQ(specs[1].line, 4);
}

TEST(ParseExportsTest, ErrorAfterContinuationNamesPhysicalLine) {
  EXPECT_EQ(ParseError("/a \\\n  10.0.0.1(ro) \\\n  10.0.0.2(rx)\n"),
            "exports:3: unknown option 'rx'");
}

TEST(ParseExportsTest, QuotedPathWithSpaces) {
  std::vector<ExportSpec> specs =
      ParseOk("\"/srv/my data\" *(ro)\n\"/x y\"\n/oct\\040al\n");
  ASSERT_EQ(specs.size(), 3u);
  EXPECT_EQ(specs[0].path, "/srv/my data");
  EXPECT_TRUE(specs[0].rules[0].options.read_only);
  EXPECT_EQ(specs[1].path, "/x y");
  EXPECT_EQ(specs[2].path, "/oct al");
}

TEST(ParseExportsTest, PathWithoutClientsIsForEveryoneWithDefaults) {
  std::vector<ExportSpec> specs = ParseOk("/srv\n");
  ASSERT_EQ(specs.size(), 1u);
  ASSERT_EQ(specs[0].rules.size(), 1u);
  EXPECT_EQ(specs[0].rules[0].pattern.kind, ClientPattern::Kind::kAnyone);
  EXPECT_EQ(specs[0].rules[0].pattern.text, "*");
  EXPECT_EQ(specs[0].rules[0].options, ExportOptions());
}

TEST(ParseExportsTest, HostWithoutParenthesesGetsDefaults) {
  std::vector<ExportSpec> specs = ParseOk("/srv 10.0.0.1 10.0.0.2(ro)\n");
  ASSERT_EQ(specs[0].rules.size(), 2u);
  EXPECT_EQ(specs[0].rules[0].options, ExportOptions());
  EXPECT_TRUE(specs[0].rules[1].options.read_only);
}

TEST(ParseExportsTest, OptionsWithoutHostMeanEveryone) {
  std::vector<ExportSpec> specs = ParseOk("/srv (ro)\n");
  ASSERT_EQ(specs[0].rules.size(), 1u);
  EXPECT_EQ(specs[0].rules[0].pattern.kind, ClientPattern::Kind::kAnyone);
  EXPECT_TRUE(specs[0].rules[0].options.read_only);
}

TEST(ParseExportsTest, DefaultOptionsForm) {
  std::vector<ExportSpec> specs =
      ParseOk("/srv -ro,anonuid=5 10.0.0.1 10.0.0.2(rw)\n/b -ro\n");
  ASSERT_EQ(specs.size(), 2u);
  ASSERT_EQ(specs[0].rules.size(), 2u);
  EXPECT_TRUE(specs[0].rules[0].options.read_only);
  EXPECT_EQ(specs[0].rules[0].options.anonuid, 5u);
  EXPECT_FALSE(specs[0].rules[1].options.read_only);  // rw overrides the default
  EXPECT_EQ(specs[0].rules[1].options.anonuid, 5u);   // the rest is inherited
  EXPECT_TRUE(specs[1].rules[0].options.read_only);
  // sync/async are per client rule too, with a line default.
  specs = ParseOk("/srv -async 10.0.0.1 10.0.0.2(sync)\n");
  ASSERT_EQ(specs.size(), 1u);
  EXPECT_FALSE(specs[0].rules[0].options.sync);
  EXPECT_TRUE(specs[0].rules[1].options.sync);
  EXPECT_EQ(ParseError("/srv 10.0.0.1 -ro\n"),
            "exports:1: default options '-ro' must directly follow the path");
}

TEST(ParseExportsTest, PathsAreNormalised) {
  std::vector<ExportSpec> specs = ParseOk("//srv///data/\n/a/./b/.\n/\n");
  ASSERT_EQ(specs.size(), 3u);
  EXPECT_EQ(specs[0].path, "/srv/data");
  EXPECT_EQ(specs[1].path, "/a/b");
  EXPECT_EQ(specs[2].path, "/");
}

TEST(ParseExportsTest, Errors) {
  EXPECT_EQ(ParseError("/a\n\n/b *(rw,rx)\n"), "exports:3: unknown option 'rx'");
  EXPECT_EQ(ParseError("srv *(rw)\n"), "exports:1: export path 'srv' is not absolute");
  EXPECT_EQ(ParseError("/a/../etc\n"),
            "exports:1: export path '/a/../etc' contains '..'");
  EXPECT_EQ(
      ParseError("/a *(fsid=root)\n"),
      "exports:1: fsid=root (the NFSv4 pseudo-root) is not supported; use a non-zero "
      "number");
  EXPECT_EQ(ParseError("/a *(fsid=0)\n"),
            "exports:1: fsid=0 (the NFSv4 pseudo-root) is not supported; use a non-zero "
            "number");
  EXPECT_EQ(
      ParseError("/a *(fsid=8a9c2f1e-0000-4000-8000-000000000000)\n"),
      "exports:1: fsid=8a9c2f1e-0000-4000-8000-000000000000 is not supported: only a "
      "numeric fsid=N (no UUID) is");
  EXPECT_EQ(ParseError("/a *(anonuid=-1)\n"),
            "exports:1: bad value '-1' for option 'anonuid' (want a number)");
  EXPECT_EQ(ParseError("/a *(anongid=x)\n"),
            "exports:1: bad value 'x' for option 'anongid' (want a number)");
  EXPECT_EQ(ParseError("/a *(rw\n"), "exports:1: unbalanced '(' in options");
  EXPECT_EQ(ParseError("/a *rw)\n"), "exports:1: unbalanced ')' in options");
  EXPECT_EQ(ParseError("/a\n\"/b *(rw)\n"), "exports:2: unterminated quote");
  EXPECT_EQ(ParseError("/a *(ro)x\n"),
            "exports:1: bad client '*(ro)x': want host(options)");
  EXPECT_EQ(ParseError("/a\n/b\n/a/ *(ro)\n"),
            "exports:3: /a is already exported at line 1");
  EXPECT_EQ(ParseError("/a @trusted(rw)\n"),
            "exports:1: bad client '@trusted': netgroup '@trusted' is not supported");
}

TEST(ParseExportsTest, BadCidr) {
  EXPECT_EQ(ParseError("/a 10.0.0.0/33(rw)\n"),
            "exports:1: bad client '10.0.0.0/33': prefix length 33 out of range 0..32");
  EXPECT_EQ(ParseError("/a fd00::/129\n"),
            "exports:1: bad client 'fd00::/129': prefix length 129 out of range 0..128");
  EXPECT_EQ(ParseError("/a 10.0.0.0/(rw)\n"),
            "exports:1: bad client '10.0.0.0/': bad prefix length ''");
  EXPECT_EQ(ParseError("/a 10.0.0.0/x\n"),
            "exports:1: bad client '10.0.0.0/x': bad prefix length 'x'");
  EXPECT_EQ(ParseError("/a 10.0.0.0/255.0.255.0\n"),
            "exports:1: bad client '10.0.0.0/255.0.255.0': '255.0.255.0' is not a "
            "contiguous netmask");
  EXPECT_EQ(ParseError("/a 10.0.0.300/8\n"),
            "exports:1: bad client '10.0.0.300/8': '10.0.0.300' is not an IPv4 or IPv6 "
            "address");
}

TEST(ParseExportArgTest, DirWithOptions) {
  absl::StatusOr<ExportSpec> spec = ParseExportArg("/srv//x/:ro,no_root_squash,fsid=3,async");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->path, "/srv/x");
  EXPECT_EQ(spec->line, 0);
  ASSERT_EQ(spec->rules.size(), 1u);
  EXPECT_EQ(spec->rules[0].pattern.kind, ClientPattern::Kind::kAnyone);
  EXPECT_EQ(spec->rules[0].pattern.text, "*");
  EXPECT_TRUE(spec->rules[0].options.read_only);
  EXPECT_EQ(spec->rules[0].options.squash, Squash::kNone);
  EXPECT_EQ(spec->rules[0].options.fsid, 3u);
  EXPECT_FALSE(spec->rules[0].options.sync);
}

TEST(ParseExportArgTest, DirAlone) {
  absl::StatusOr<ExportSpec> spec = ParseExportArg("/srv");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->rules[0].options, ExportOptions());
  spec = ParseExportArg("/a:b:");  // a ':' in the path: end with an empty option list
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->path, "/a:b");
}

TEST(ParseExportArgTest, Errors) {
  EXPECT_EQ(ParseExportArg("/srv:rw,bogus").status().message(),
            "--export '/srv:rw,bogus': unknown option 'bogus'");
  EXPECT_EQ(ParseExportArg("srv:rw").status().message(),
            "--export 'srv:rw': export path 'srv' is not absolute");
}

TEST(ParseExportsTest, SameSpecParsesEqual) {
  // Reload relies on equality of unchanged specs.
  EXPECT_EQ(ParseOk("/a 10.0.0.0/8(ro) *\n"), ParseOk("/a 10.0.0.0/8(ro) *\n"));
  EXPECT_NE(ParseOk("/a 10.0.0.0/8(ro) *\n"), ParseOk("/a 10.0.0.0/8(rw) *\n"));
}

}  // namespace
}  // namespace localnfs::exports
