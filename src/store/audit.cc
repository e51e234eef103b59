// The audit log's backend-independent half (docs/operations.md "Audit log"):
// its key, the row HMAC (a persisted format), anchors, verification and the
// JSON shape of a row. Backends insert rows and compute each HMAC with
// AuditHmac inside the transaction of the action they record.
#include "store/audit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/hash.h"
#include "base/secrets.h"
#include "smithers/store.h"

namespace smithers {
namespace {

constexpr size_t kMinKeyBytes = 16;
constexpr size_t kMaxKeyBytes = 4096;

std::string TrimRight(std::string s) {
  while (!s.empty() &&
         (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) {
    s.pop_back();
  }
  return s;
}

Result<std::string> CheckedKey(std::string key, const std::string& what) {
  key = TrimRight(std::move(key));
  if (key.size() < kMinKeyBytes) {
    return FailedPreconditionError("the audit key " + what + " is shorter than " +
                                   std::to_string(kMinKeyBytes) + " bytes");
  }
  return key;
}

Result<std::string> ReadKeyFile(const std::string& path, bool missing_is_not_found) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    const std::string why = std::strerror(errno);
    if (errno == ENOENT && missing_is_not_found) {
      return NotFoundError("no audit key file " + path + " yet");
    }
    return FailedPreconditionError("cannot read the audit key file " + path + ": " + why);
  }
  if (!S_ISREG(st.st_mode) || st.st_size > static_cast<off_t>(kMaxKeyBytes)) {
    return FailedPreconditionError("the audit key file " + path +
                                   " is not a regular file of at most 4096 bytes");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return FailedPreconditionError("cannot read the audit key file " + path + ": " +
                                   std::strerror(errno));
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return CheckedKey(buf.str(), "in " + path);
}

}  // namespace

Result<std::string> LoadAuditKey(const std::string& ref, const std::string& db_path) {
  if (ref.empty() && db_path.empty()) {
    return FailedPreconditionError(
        "audit log: a server database (PostgreSQL) has no key file beside it; give the log's "
        "key with --audit-key (SMITHERS_AUDIT_KEY): file:/PATH or env:NAME");
  }
  if (ref.empty()) return ReadKeyFile(db_path + ".audit-key", /*missing_is_not_found=*/true);
  if (ref.rfind("file:", 0) == 0) {
    const std::string path = ref.substr(5);
    if (path.empty() || path.front() != '/') {
      return InvalidArgumentError("audit key reference \"" + ref +
                                  "\": a file reference takes an absolute path (file:/...)");
    }
    return ReadKeyFile(path, /*missing_is_not_found=*/false);
  }
  if (ref.rfind("env:", 0) == 0) {
    const std::string name = ref.substr(4);
    std::optional<std::string> value = base::ProcessSecrets().GetInternal(name);
    if (!value) {
      const char* raw = name.empty() ? nullptr : std::getenv(name.c_str());
      if (raw != nullptr) value = raw;
    }
    if (!value || value->empty()) {
      return FailedPreconditionError("the audit key variable " + name + " is not set");
    }
    return CheckedKey(*value, "in $" + name);
  }
  return InvalidArgumentError("audit key reference \"" + ref +
                              "\" is neither file:/absolute/path nor env:NAME");
}

namespace store {

Status CreateDefaultAuditKey(const std::string& db_path) {
  const std::string path = db_path + ".audit-key";
  const std::string tmp = path + ".tmp-" + base::RandomHex(8);
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return FailedPreconditionError("cannot create the audit key file " + path + ": " +
                                   std::strerror(errno));
  }
  const std::string fresh = base::RandomHex(32) + "\n";
  const bool written =
      write(fd, fresh.data(), fresh.size()) == static_cast<ssize_t>(fresh.size()) && fsync(fd) == 0;
  const int write_errno = errno;
  close(fd);
  const bool linked = written && link(tmp.c_str(), path.c_str()) == 0;
  const int link_errno = errno;
  unlink(tmp.c_str());
  if (!written) {
    return FailedPreconditionError("cannot write the audit key file " + path + ": " +
                                   std::strerror(write_errno));
  }
  if (!linked) {
    if (link_errno == EEXIST) return Status::Ok();  // another process made it first
    return FailedPreconditionError("cannot create the audit key file " + path + ": " +
                                   std::strerror(link_errno));
  }
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const int dfd = open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const bool synced = dfd >= 0 && fsync(dfd) == 0;
  const int sync_errno = errno;
  if (dfd >= 0) close(dfd);
  if (!synced) {
    return FailedPreconditionError("cannot sync the folder of the audit key file " + path + ": " +
                                   std::strerror(sync_errno));
  }
  return Status::Ok();
}

}  // namespace store

AuditEntry SystemAudit(std::string action, std::string target, Json details) {
  return {.actor = "system",
          .actor_via = "system",
          .action = std::move(action),
          .target = std::move(target),
          .details = std::move(details)};
}

std::string AuditKeyId(std::string_view key) {
  return base::HmacSha256Hex(key, "smithers audit key id").substr(0, 16);
}

std::string AuditHmac(const AuditRecord& r, std::string_view key) {
  // Version 1 of the row format: a JSON array in a fixed order (details are
  // an object, whose keys nlohmann/json writes sorted).
  const Json content =
      Json::array({"smithers-audit-1", r.seq, r.chain, r.chain_seq, r.entry.at_ms, r.entry.actor,
                   r.entry.actor_via, r.entry.action, r.entry.target, r.entry.run_id,
                   r.entry.details, r.version, r.build, r.module_revision, r.key_id, r.prev_hmac});
  return base::HmacSha256Hex(key, content.dump(-1, ' ', false, Json::error_handler_t::replace));
}

std::string AuditAnchor(const std::vector<AuditRecord>& rows) {
  if (rows.empty()) return "0:";
  return std::to_string(rows.back().seq) + ":" + rows.back().hmac;
}

Result<AuditVerification> VerifyAuditLog(const std::vector<AuditRecord>& rows, std::string_view key,
                                         const std::string& anchor) {
  int64_t anchor_seq = -1;
  std::string anchor_hmac;
  if (!anchor.empty()) {
    const size_t colon = anchor.find(':');
    const char* end = anchor.data() + (colon == std::string::npos ? 0 : colon);
    auto [ptr, ec] = std::from_chars(anchor.data(), end, anchor_seq);
    if (colon == std::string::npos || ec != std::errc() || ptr != end || anchor_seq < 0) {
      return InvalidArgumentError("anchor \"" + anchor +
                                  "\" is not SEQ:HMAC as `smithers audit anchor` prints it");
    }
    anchor_hmac = anchor.substr(colon + 1);
  }
  AuditVerification v;
  const std::string key_id = AuditKeyId(key);
  struct ChainHead {
    int64_t chain_seq = 0;
    std::string hmac;
  };
  std::map<std::string, ChainHead> heads;
  int64_t expected_seq = 1;
  bool anchor_seen = anchor.empty() || anchor_seq == 0;
  for (const AuditRecord& r : rows) {
    const std::string at = "row " + std::to_string(r.seq) + " (" + r.entry.action + "): ";
    ++v.rows;
    if (r.seq != expected_seq) {
      v.problems.push_back(at + "expected seq " + std::to_string(expected_seq) + ": rows " +
                           std::to_string(expected_seq) + ".." + std::to_string(r.seq - 1) +
                           " are missing");
    }
    expected_seq = r.seq + 1;
    ChainHead& head = heads[r.chain];
    if (r.chain_seq != head.chain_seq + 1) {
      v.problems.push_back(at + "chain " + r.chain + " goes from " +
                           std::to_string(head.chain_seq) + " to " + std::to_string(r.chain_seq) +
                           ": a row of it was removed or moved");
    } else if (r.prev_hmac != head.hmac) {
      v.problems.push_back(at + "does not follow the previous row of chain " + r.chain);
    }
    if (r.key_id != key_id) {
      v.problems.push_back(at + "was signed by key " + r.key_id + ", not by this key (" + key_id +
                           ")");
    } else if (AuditHmac(r, key) != r.hmac) {
      v.problems.push_back(at + "its HMAC does not match its content: the row was edited");
    }
    head = {.chain_seq = r.chain_seq, .hmac = r.hmac};
    if (r.seq == anchor_seq) {
      anchor_seen = true;
      if (r.hmac != anchor_hmac) {
        v.problems.push_back(at + "is not the row the anchor recorded (its HMAC differs)");
      }
    }
  }
  if (!anchor_seen) {
    v.problems.push_back("the anchor's row " + std::to_string(anchor_seq) +
                         " is gone: the log was cut back to " + std::to_string(expected_seq - 1) +
                         " rows");
  }
  v.chains = static_cast<int64_t>(heads.size());
  return v;
}

Json AuditRecordJson(const AuditRecord& r) {
  return {{"seq", r.seq},
          {"chain", r.chain},
          {"chainSeq", r.chain_seq},
          {"at", base::FormatIsoTime(r.entry.at_ms)},
          {"atMs", r.entry.at_ms},
          {"actor", r.entry.actor},
          {"actorVia", r.entry.actor_via},
          {"action", r.entry.action},
          {"target", r.entry.target},
          {"runId", r.entry.run_id.empty() ? Json() : Json(r.entry.run_id)},
          {"details", r.entry.details},
          {"version", r.version},
          {"build", r.build},
          {"moduleRevision", r.module_revision.empty() ? Json() : Json(r.module_revision)},
          {"keyId", r.key_id},
          {"prevHmac", r.prev_hmac},
          {"hmac", r.hmac}};
}

}  // namespace smithers
