#include "base/json_limits.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <string>
#include <vector>

namespace smithers::base {
namespace {

std::atomic<int> g_max_depth{kDefaultMaxJsonDepth};

constexpr size_t kMaxKeyInPath = 40;
constexpr size_t kMaxPath = 240;

// One step of a path: `.key`, `["odd key"]` or `[3]`.
void AppendKey(std::string& path, std::string_view key) {
  bool simple = !key.empty() && key.size() <= kMaxKeyInPath;
  for (char c : key) {
    simple = simple && (std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-');
  }
  if (simple) {
    path += '.';
    path += key;
    return;
  }
  std::string shown(key.substr(0, kMaxKeyInPath));
  if (key.size() > kMaxKeyInPath) shown += "...";
  path += "[\"";
  for (char c : shown) {
    // Control characters and quotes would make the message ambiguous.
    if (static_cast<unsigned char>(c) < 0x20 || c == '"') {
      path += '?';
    } else {
      path += c;
    }
  }
  path += "\"]";
}

void AppendIndex(std::string& path, size_t index) {
  path += '[';
  path += std::to_string(index);
  path += ']';
}

// Long paths keep their start and their end.
std::string Shorten(std::string path) {
  if (path.size() <= kMaxPath) return path;
  return path.substr(0, kMaxPath / 2) + "..." + path.substr(path.size() - kMaxPath / 2 + 3);
}

Status TooDeep(std::string_view what, int max_depth, const std::string& path) {
  return InvalidArgumentError(std::string(what) + " nests deeper than " +
                              std::to_string(max_depth) +
                              " levels of arrays and objects (max_json_depth) at " + Shorten(path));
}

// A container open in the text being scanned.
struct TextLevel {
  bool array = false;
  bool expecting_key = false;  // object: the next string is a key
  size_t index = 0;            // array: the element being read
  std::string_view key;        // object: the member being read (raw, escapes kept)
};

}  // namespace

int MaxJsonDepth() { return g_max_depth.load(std::memory_order_relaxed); }

void SetMaxJsonDepth(int depth) {
  g_max_depth.store(std::clamp(depth, 1, kMaxJsonDepthCeiling), std::memory_order_relaxed);
}

Status CheckJsonDepth(std::string_view text, int max_depth, std::string_view what, int envelope) {
  const int limit = max_depth + envelope;
  std::vector<TextLevel> open;
  const size_t n = text.size();
  for (size_t i = 0; i < n; ++i) {
    char c = text[i];
    switch (c) {
      case '"': {
        size_t start = i + 1;
        size_t j = start;
        while (j < n && text[j] != '"') j += text[j] == '\\' ? 2 : 1;
        if (!open.empty() && !open.back().array && open.back().expecting_key) {
          open.back().key = text.substr(start, std::min(j, n) - start);
          open.back().expecting_key = false;
        }
        i = j;  // the closing quote (or past the end)
        break;
      }
      case '{':
      case '[': {
        if (static_cast<int>(open.size()) >= limit) {
          std::string path = "$";
          for (const TextLevel& l : open) {
            if (l.array) {
              AppendIndex(path, l.index);
            } else {
              AppendKey(path, l.key);
            }
          }
          return TooDeep(what, max_depth, path);
        }
        open.push_back({.array = c == '[', .expecting_key = c == '{'});
        break;
      }
      case '}':
      case ']':
        if (!open.empty()) open.pop_back();
        break;
      case ',':
        if (!open.empty()) {
          if (open.back().array) {
            open.back().index++;
          } else {
            open.back().expecting_key = true;
          }
        }
        break;
      default: break;
    }
  }
  return Status::Ok();
}

Status CheckJsonValueDepth(const Json& value, int max_depth, std::string_view what, int envelope) {
  const int limit = max_depth + envelope;
  if (!value.is_structured()) return Status::Ok();
  if (limit < 1) return TooDeep(what, max_depth, "$");
  struct Level {
    const Json* node;
    Json::const_iterator it;
  };
  std::vector<Level> open;
  open.push_back({&value, value.cbegin()});
  while (!open.empty()) {
    Level& top = open.back();
    if (top.it == top.node->cend()) {
      open.pop_back();
      if (!open.empty()) ++open.back().it;
      continue;
    }
    const Json& child = *top.it;
    if (!child.is_structured()) {
      ++top.it;
      continue;
    }
    if (static_cast<int>(open.size()) >= limit) {
      std::string path = "$";
      for (const Level& l : open) {
        if (l.node->is_array()) {
          AppendIndex(path, static_cast<size_t>(l.it - l.node->cbegin()));
        } else {
          AppendKey(path, l.it.key());
        }
      }
      return TooDeep(what, max_depth, path);
    }
    open.push_back({&child, child.cbegin()});
  }
  return Status::Ok();
}

Result<Json> ParseJsonLimited(std::string_view text, int max_depth, std::string_view what) {
  SMITHERS_RETURN_IF_ERROR(CheckJsonDepth(text, max_depth, what));
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    std::string message = e.what();
    // nlohmann's message is "[json.exception.parse_error.101] parse error at line 1, column 9: ..."
    size_t p = message.find("parse error");
    return InvalidArgumentError(std::string(what) + " is not valid JSON: " +
                                (p == std::string::npos ? message : message.substr(p)));
  }
}

}  // namespace smithers::base
