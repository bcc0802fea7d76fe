// export_cache/exports_parser.cc — see exports_parser.h: the exports(5) parser and
// the --export DIR[:OPTS] parser.
//
// Syntax accepted (a subset of nfs-utils' exports(5), errors instead of guesses):
//   /dir  host(opts)  10.0.0.0/8(opts)  *(opts)   # comment
//   "/dir with spaces" -ro  host1  host2(rw)      -opts = defaults for this line
//   /long  <backslash-newline>  client(opts)      a backslash at the end of a
//                                                  line joins the next line
// A path with no client is exported to "*"; "host" without parentheses gets the
// (default) options; "(opts)" without a host means "*" (and is warned about, as
// "host (opts)" with a blank is the classic exports(5) mistake). Inside quotes,
// blanks and '#' are part of the token; "\ooo" (octal) is a byte, as exportfs writes
// blanks in etab.
//
// Errors name the file and the physical line of the offending token:
//   "exports:3: unknown option 'rx'".
#include "export_cache/exports_parser.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/log.h"
#include "common/status.h"

namespace localnfs::exports {
namespace {

// Debian's Abseil 20220623 has its own absl::string_view, distinct from
// std::string_view; the parser works in absl::string_view for absl::Str* functions.
absl::string_view View(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

struct Token {
  std::string text;
  int line = 0;
};

bool IsBlank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}
bool IsOctal(char c) { return c >= '0' && c <= '7'; }

// Length of a line continuation ("\\\n" or "\\\r\n") at text[i], or 0.
size_t ContinuationAt(absl::string_view text, size_t i) {
  if (text[i] != '\\') return 0;
  if (i + 1 < text.size() && text[i + 1] == '\n') return 2;
  if (i + 2 < text.size() && text[i + 1] == '\r' && text[i + 2] == '\n') return 3;
  return 0;
}

// Splits `text` into entries (logical lines) of tokens.
absl::StatusOr<std::vector<std::vector<Token>>> Tokenize(absl::string_view text,
                                                         absl::string_view filename) {
  std::vector<std::vector<Token>> entries;
  std::vector<Token> current;
  int line = 1;
  size_t i = 0;
  const size_t n = text.size();
  auto error = [&](int at, absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrFormat("%s:%d: %s", filename, at, what));
  };
  while (i < n) {
    const char c = text[i];
    if (c == '\n') {
      if (!current.empty()) entries.push_back(std::move(current));
      current.clear();
      ++line;
      ++i;
      continue;
    }
    if (size_t k = ContinuationAt(text, i)) {
      ++line;
      i += k;
      continue;
    }
    if (IsBlank(c)) {
      ++i;
      continue;
    }
    if (c == '#') {
      while (i < n && text[i] != '\n') ++i;
      continue;
    }
    Token token{.text = {}, .line = line};
    bool quoted = false;
    int parens = 0;
    while (i < n) {
      const char t = text[i];
      if (t == '\n') {
        if (quoted) return error(token.line, "unterminated quote");
        if (parens > 0) return error(token.line, "unbalanced '(' in options");
        break;
      }
      if (size_t k = ContinuationAt(text, i)) {
        if (!quoted && parens == 0) break;  // ends the token; the outer loop joins
        ++line;
        i += k;
        continue;
      }
      if (t == '\\' && i + 3 < n && IsOctal(text[i + 1]) && IsOctal(text[i + 2]) &&
          IsOctal(text[i + 3])) {
        token.text += static_cast<char>(((text[i + 1] - '0') << 6) |
                                        ((text[i + 2] - '0') << 3) | (text[i + 3] - '0'));
        i += 4;
        continue;
      }
      if (t == '"') {
        quoted = !quoted;
        ++i;
        continue;
      }
      if (!quoted) {
        if (IsBlank(t)) {
          if (parens == 0) break;
          ++i;  // "host(rw, sync)": blanks inside the options are not significant
          continue;
        }
        if (t == '(') {
          ++parens;
        } else if (t == ')') {
          if (--parens < 0) return error(token.line, "unbalanced ')' in options");
        }
      }
      token.text += t;
      ++i;
    }
    if (quoted) return error(token.line, "unterminated quote");
    if (parens > 0) return error(token.line, "unbalanced '(' in options");
    current.push_back(std::move(token));
  }
  if (!current.empty()) entries.push_back(std::move(current));
  return entries;
}

absl::Status ParseUint32(absl::string_view name, absl::string_view value, uint32_t* out) {
  if (value.empty() || !absl::ascii_isdigit(value[0]) || !absl::SimpleAtoi(value, out))
    return absl::InvalidArgumentError(
        absl::StrFormat("bad value '%s' for option '%s' (want a number)", value, name));
  return absl::OkStatus();
}

// Applies one option ("rw", "anonuid=7", …) to `o`. Errors carry no location.
absl::Status ApplyOption(absl::string_view opt, ExportOptions* o) {
  const size_t eq = opt.find('=');
  const absl::string_view name = opt.substr(0, eq);
  const absl::string_view value = eq == absl::string_view::npos ? "" : opt.substr(eq + 1);
  const bool has_value = eq != absl::string_view::npos;
  if (!has_value) {
    if (name == "rw") {
      o->read_only = false;
    } else if (name == "ro") {
      o->read_only = true;
    } else if (name == "root_squash") {
      o->squash = Squash::kRoot;
    } else if (name == "no_root_squash") {
      o->squash = Squash::kNone;
    } else if (name == "all_squash") {
      o->squash = Squash::kAll;
    } else if (name == "no_all_squash") {
      if (o->squash == Squash::kAll) o->squash = Squash::kRoot;
    } else if (name == "secure") {
      o->secure = true;
    } else if (name == "insecure") {
      o->secure = false;
    } else if (name == "sync") {
      o->sync = true;
    } else if (name == "async") {
      o->sync = false;
    } else if (name == "subtree_check" ||
               name == "no_subtree_check" || name == "wdelay" || name == "no_wdelay" ||
               name == "crossmnt" || name == "nohide" || name == "hide") {
      // Accepted for compatibility with existing exports files; they describe kernel
      // behaviour that has no equivalent (or no choice) here.
    } else {
      return absl::InvalidArgumentError(absl::StrFormat("unknown option '%s'", opt));
    }
    return absl::OkStatus();
  }
  if (name == "anonuid") return ParseUint32(name, value, &o->anonuid);
  if (name == "anongid") return ParseUint32(name, value, &o->anongid);
  if (name == "fsid") {
    if (value == "root" || value == "0")
      return absl::InvalidArgumentError(absl::StrFormat(
          "fsid=%s (the NFSv4 pseudo-root) is not supported; use a non-zero number",
          value));
    uint32_t fsid;
    if (value.empty() || !absl::ascii_isdigit(value[0]) ||
        !absl::SimpleAtoi(value, &fsid))
      return absl::InvalidArgumentError(absl::StrFormat(
          "fsid=%s is not supported: only a numeric fsid=N (no UUID) is", value));
    o->fsid = fsid;
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrFormat("unknown option '%s'", opt));
}

// Applies a comma-separated option list; errors are prefixed with `where`.
absl::Status ApplyOptions(absl::string_view list, absl::string_view where,
                          ExportOptions* o) {
  for (absl::string_view opt : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    absl::Status s = ApplyOption(opt, o);
    if (!s.ok())
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", s.message()));
  }
  return absl::OkStatus();
}

// One client token: "host", "host(opts)" or "(opts)".
absl::StatusOr<ClientRule> ParseClientToken(const Token& token,
                                            const ExportOptions& defaults,
                                            absl::string_view filename,
                                            absl::string_view path) {
  const std::string where = absl::StrFormat("%s:%d", filename, token.line);
  ClientRule rule;
  rule.options = defaults;
  absl::string_view host = token.text;
  const size_t open = token.text.find('(');
  if (open != std::string::npos) {
    if (token.text.back() != ')' || token.text.find('(', open + 1) != std::string::npos)
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: bad client '%s': want host(options)", where, token.text));
    host = absl::string_view(token.text).substr(0, open);
    absl::string_view list =
        absl::string_view(token.text).substr(open + 1, token.text.size() - open - 2);
    RETURN_IF_ERROR(ApplyOptions(list, where, &rule.options));
    if (host.empty()) {
      LOG_WARNING("%s: no client given for %s %s; taken as '*%s'", where, path,
                  token.text, token.text);
      host = "*";
    }
  }
  absl::StatusOr<ClientPattern> pattern =
      ParseClientPattern(std::string_view(host.data(), host.size()));
  if (!pattern.ok())
    return absl::InvalidArgumentError(absl::StrFormat("%s: bad client '%s': %s", where,
                                                      host, pattern.status().message()));
  rule.pattern = *std::move(pattern);
  return rule;
}

absl::StatusOr<ExportSpec> ParseEntry(const std::vector<Token>& tokens,
                                      absl::string_view filename, const ExportOptions& base) {
  ExportSpec spec;
  spec.line = tokens[0].line;
  spec.file = std::string(filename);
  absl::StatusOr<std::string> path = NormalizeExportPath(tokens[0].text);
  if (!path.ok())
    return absl::InvalidArgumentError(
        absl::StrFormat("%s:%d: %s", filename, spec.line, path.status().message()));
  spec.path = *std::move(path);

  ExportOptions defaults = base;
  size_t next = 1;
  if (next < tokens.size() && absl::StartsWith(tokens[next].text, "-")) {
    RETURN_IF_ERROR(ApplyOptions(absl::string_view(tokens[next].text).substr(1),
                                 absl::StrFormat("%s:%d", filename, tokens[next].line),
                                 &defaults));
    ++next;
  }
  for (; next < tokens.size(); ++next) {
    if (absl::StartsWith(tokens[next].text, "-"))
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d: default options '%s' must directly follow the path",
                          filename, tokens[next].line, tokens[next].text));
    ASSIGN_OR_RETURN(ClientRule rule,
                     ParseClientToken(tokens[next], defaults, filename, spec.path));
    spec.rules.push_back(std::move(rule));
  }
  if (spec.rules.empty()) {
    ClientRule everyone;
    everyone.pattern.text = "*";
    everyone.options = defaults;
    spec.rules.push_back(std::move(everyone));
  }
  return spec;
}

}  // namespace

absl::StatusOr<std::string> NormalizeExportPath(std::string_view path_in) {
  const absl::string_view path = View(path_in);
  if (path.empty() || path[0] != '/')
    return absl::InvalidArgumentError(
        absl::StrFormat("export path '%s' is not absolute", path));
  if (path.find('\0') != absl::string_view::npos)
    return absl::InvalidArgumentError("export path contains a NUL byte");
  std::vector<absl::string_view> parts;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..")
      return absl::InvalidArgumentError(
          absl::StrFormat("export path '%s' contains '..'", path));
    parts.push_back(part);
  }
  return absl::StrCat("/", absl::StrJoin(parts, "/"));
}

absl::StatusOr<std::vector<ExportSpec>> ParseExports(std::string_view text_in,
                                                     std::string_view filename_in,
                                                     const ExportOptions& base) {
  const absl::string_view text = View(text_in);
  const absl::string_view filename = View(filename_in);
  ASSIGN_OR_RETURN(std::vector<std::vector<Token>> entries, Tokenize(text, filename));
  std::vector<ExportSpec> specs;
  absl::flat_hash_map<std::string, int> seen;  // path → line
  for (const std::vector<Token>& tokens : entries) {
    ASSIGN_OR_RETURN(ExportSpec spec, ParseEntry(tokens, filename, base));
    auto [it, inserted] = seen.try_emplace(spec.path, spec.line);
    if (!inserted)
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d: %s is already exported at line %d", filename, spec.line,
                          spec.path, it->second));
    specs.push_back(std::move(spec));
  }
  return specs;
}

absl::StatusOr<ExportSpec> ParseExportArg(std::string_view arg_in, const ExportOptions& base) {
  const absl::string_view arg = View(arg_in);
  const std::string where = absl::StrFormat("--export '%s'", arg);
  const size_t colon = arg.rfind(':');
  const absl::string_view dir = arg.substr(0, colon);
  const absl::string_view opts =
      colon == absl::string_view::npos ? absl::string_view() : arg.substr(colon + 1);
  ExportSpec spec;
  absl::StatusOr<std::string> path =
      NormalizeExportPath(std::string_view(dir.data(), dir.size()));
  if (!path.ok())
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", path.status().message()));
  spec.path = *std::move(path);
  ClientRule everyone;
  everyone.pattern.text = "*";
  everyone.options = base;
  RETURN_IF_ERROR(ApplyOptions(opts, where, &everyone.options));
  spec.rules.push_back(std::move(everyone));
  return spec;
}

}  // namespace localnfs::exports
