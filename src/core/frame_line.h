// One line of a frame (docs/frame_format.md) as it is built: the frame codec
// writes the fields every node has, a task mode's row (core/task_modes.h) the
// fields of its own spec. Internal to core.
#ifndef SMITHERS_CORE_FRAME_LINE_H_
#define SMITHERS_CORE_FRAME_LINE_H_

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "smithers/json.h"

namespace smithers::core {

// One line: what `Json line = ...; line[key] = value; line.dump()` gives,
// byte for byte (keys in std::map order, compact), without building the
// object: each value's JSON text goes into one buffer as it is set, and the
// line is assembled once from the sorted keys. A frame rebuilds every line of
// the tree at every render, so this is most of the frame's cost.
class FrameLine {
 public:
  class Slot {
   public:
    Slot(FrameLine& line, std::string_view key) : line_(line), key_(key) {}
    void operator=(const std::string& v) { line_.SetString(key_, v); }
    void operator=(const char* v) { line_.SetString(key_, v); }
    void operator=(std::string_view v) { line_.SetString(key_, v); }
    void operator=(bool v) { line_.SetRaw(key_, v ? "true" : "false"); }
    void operator=(int v) { line_.SetInt(key_, v); }
    void operator=(int64_t v) { line_.SetInt(key_, v); }
    void operator=(const Json& v) { line_.SetJson(key_, v); }

   private:
    FrameLine& line_;
    std::string_view key_;
  };

  Slot operator[](std::string_view key) { return Slot(*this, key); }

  // Empty again, keeping the buffers: one FrameLine builds every line of a
  // tree without allocating for each.
  void Clear() {
    fields_.clear();
    values_.clear();
  }

  std::string Dump() {
    std::sort(fields_.begin(), fields_.end(),
              [](const Field& a, const Field& b) { return a.key < b.key; });
    size_t size = 2;
    for (const Field& f : fields_) size += f.key.size() + 4 + f.len;
    std::string out;
    out.reserve(size);
    out += '{';
    for (size_t i = 0; i < fields_.size(); ++i) {
      if (i > 0) out += ',';
      out += '"';
      out += fields_[i].key;  // our own keys: nothing to escape
      out += "\":";
      out.append(values_, fields_[i].at, fields_[i].len);
    }
    out += '}';
    return out;
  }

 private:
  struct Field {
    std::string_view key;
    size_t at;
    size_t len;
  };

  // A later value for the same key replaces the earlier one, as in a Json object.
  void Begin(std::string_view key) {
    auto it =
        std::find_if(fields_.begin(), fields_.end(), [&](const Field& f) { return f.key == key; });
    if (it != fields_.end()) fields_.erase(it);
    fields_.push_back({key, values_.size(), 0});
  }
  void End() { fields_.back().len = values_.size() - fields_.back().at; }

  void SetRaw(std::string_view key, std::string_view text) {
    Begin(key);
    values_ += text;
    End();
  }
  void SetInt(std::string_view key, int64_t v) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    SetRaw(key, std::string_view(buf, static_cast<size_t>(end - buf)));
  }
  void SetString(std::string_view key, std::string_view v) {
    // Printable ASCII without '"' or '\\' is its own JSON text; anything
    // else (escapes, UTF-8, and the error on invalid UTF-8) is Json's.
    bool plain = std::all_of(v.begin(), v.end(),
                             [](char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; });
    if (!plain) {
      SetRaw(key, Json(std::string(v)).dump());
      return;
    }
    Begin(key);
    values_ += '"';
    values_ += v;
    values_ += '"';
    End();
  }
  void SetJson(std::string_view key, const Json& v) {
    if (v.is_string()) return SetString(key, v.get_ref<const std::string&>());
    SetRaw(key, v.dump());
  }

  std::vector<Field> fields_;
  std::string values_;
};

}  // namespace smithers::core

#endif  // SMITHERS_CORE_FRAME_LINE_H_
