// Frames: TreeLines, the delta/keyframe encoder and the decoder. See
// docs/frame_format.md.
#include "core/frame_codec.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "smithers/workflow.h"

namespace smithers::core {
namespace {

using Frames = std::vector<std::pair<std::string, std::string>>;

// Random JSON values of the kinds a static task can hold.
Json RandomValue(std::mt19937& rng, int depth = 0) {
  switch (std::uniform_int_distribution<int>(0, depth > 1 ? 4 : 6)(rng)) {
    case 0: return static_cast<int>(rng() % 2000) - 1000;
    case 1: return std::uniform_real_distribution<double>(-1e6, 1e6)(rng);
    case 2: return std::string("h\xC3\xA9llo \"q\" \\ \n\t ") + std::to_string(rng() % 100);
    case 3: return rng() % 2 == 0;
    case 4: return nullptr;
    case 5: {
      Json o = Json::object();
      int n = static_cast<int>(rng() % 4);
      for (int i = 0; i < n; ++i) o["k" + std::to_string(rng() % 10)] = RandomValue(rng, depth + 1);
      return o;
    }
    default: {
      Json a = Json::array();
      int n = static_cast<int>(rng() % 4);
      for (int i = 0; i < n; ++i) a.push_back(RandomValue(rng, depth + 1));
      return a;
    }
  }
}

Node RandomNode(std::mt19937& rng, int& next_id) {
  std::string id = "n" + std::to_string(next_id++);
  switch (rng() % 5) {
    case 0: return CommandTask(id, "out", {"echo", id});
    case 1: {
      Node p =
          Parallel({StaticTask(id + "a", "out", RandomValue(rng))}, static_cast<int>(rng() % 3));
      return p;
    }
    default: return StaticTask(id, "out", RandomValue(rng));
  }
}

// One random edit of the tree's top-level children, or of a child's children.
void RandomEdit(std::mt19937& rng, Node& root, int& next_id) {
  std::vector<Node>* kids = &root.children;
  if (!kids->empty() && rng() % 3 == 0) {
    Node& c = (*kids)[rng() % kids->size()];
    if (c.kind == NodeKind::kParallel) kids = &c.children;
  }
  const size_t n = kids->size();
  switch (n == 0 ? 0 : rng() % 5) {
    case 0:  // append
      kids->push_back(RandomNode(rng, next_id));
      break;
    case 1:  // insert in the middle
      kids->insert(kids->begin() + static_cast<long>(rng() % (n + 1)), RandomNode(rng, next_id));
      break;
    case 2:  // remove anywhere
      kids->erase(kids->begin() + static_cast<long>(rng() % n));
      break;
    case 3: {  // change one in the middle
      Node& c = (*kids)[rng() % n];
      if (c.kind == NodeKind::kTask && c.task.mode == TaskMode::kStatic) {
        c.task.value = RandomValue(rng);
      } else {
        c.skip = !c.skip;
      }
      break;
    }
    default:  // no change at all (a render that did not change the tree)
      break;
  }
}

TEST(TreeLines, OneCanonicalLinePerNodeDepthFirst) {
  Node a = StaticTask("greet", "greeting", {{"message", "Hello"}});
  Node root = Workflow("hello", {a, Parallel({CommandTask("c", "out", {"ls", "-l"})}, 2)});
  std::vector<std::string> lines = TreeLines(root);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], R"({"d":0,"id":"hello","k":"workflow"})");
  EXPECT_EQ(
      lines[1],
      R"({"d":1,"id":"greet","k":"task","mode":"static","output":"greeting","value":{"message":"Hello"}})");
  EXPECT_EQ(lines[2], R"({"d":1,"k":"parallel","maxConcurrency":2})");
  EXPECT_EQ(lines[3],
            R"({"argv":["ls","-l"],"d":2,"id":"c","k":"task","mode":"command","output":"out"})");
}

// A Sandbox's line (persisted): its child module, its sandbox and the files it ships.
TEST(TreeLines, SandboxLineGolden) {
  Node box = StaticTask("fix", "patch", nullptr);
  box.task.mode = TaskMode::kSandbox;
  box.task.value = nullptr;
  SandboxTaskSpec s{.workflow = "/w/child.lua", .files = {"src", "Makefile"}};
  s.sandbox.memory_limit_bytes = 1 << 20;
  box.task.sandbox_task = std::make_shared<const SandboxTaskSpec>(s);
  std::vector<std::string> lines = TreeLines(box);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(
      lines[0],
      R"({"d":0,"files":["src","Makefile"],"id":"fix","k":"task","mode":"sandbox","output":"patch","sandbox":{"allowNetwork":false,"memoryLimit":1048576,"runtime":"bubblewrap"},"workflow":"/w/child.lua"})");
}

TEST(TreeLines, DependenciesAreRecordedOnlyOnTheTasksThatHaveThem) {
  Node plain = StaticTask("a", "step", 1);
  Node reads = WithDeps(StaticTask("b", "step", 2),
                        {.depends_on = {"x"}, .rows = {{"prev", {"a", "step"}}}, .optional = true});
  Node orders = WithDeps(StaticTask("c", "step", 3), {.depends_on = {"a", "b"}});
  std::vector<std::string> lines = TreeLines(Sequence({plain, reads, orders}));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[1], R"({"d":1,"id":"a","k":"task","mode":"static","output":"step","value":1})");
  EXPECT_EQ(
      lines[2],
      R"({"d":1,"dependsOn":["x"],"deps":{"prev":{"id":"a","output":"step"}},"depsOptional":true,"id":"b","k":"task","mode":"static","output":"step","value":2})");
  EXPECT_EQ(
      lines[3],
      R"({"d":1,"dependsOn":["a","b"],"id":"c","k":"task","mode":"static","output":"step","value":3})");
}

// Lines are written without building a Json object; they must be exactly
// what Json's dump of the same object gives (the canonical form the stored
// frames and their hashes are made of): every line is its own parse-and-dump.
TEST(TreeLines, EqualJsonsOwnCanonicalTextForEveryKindOfValue) {
  Node quoted = StaticTask("a\"b\\c", "out", {{"z", 1}, {"a", {1.5, "x\ny", nullptr}}});
  quoted.task.label = "tab\there \x01 \x7f";
  quoted.task.retries = 2;
  quoted.task.timeout_ms = 1234567890123;
  quoted.task.continue_on_fail = true;
  quoted.skip = true;
  Node unicode = CommandTask("caf\xc3\xa9 \xe2\x9c\x93", "out", {"echo", "\"hi\"", "\xc3\xa9"});
  ApprovalSpec a;
  a.owner = "o\"wner";
  Node approval = ApprovalTask("gate", "out", a);
  Node wait = WaitForEventTask("w", "out", EventWaitSpec{.event = "ev", .correlation_id = "c"});
  Node timer = TimerTask("t", TimerSpec{.duration_ms = 0});
  Node loop = Loop("l", true, {Sequence({timer})}, 3, "fail");
  Node root = Workflow("wf \"x\"",
                       {quoted, unicode, Branch(true, approval, wait), Parallel({loop, wait}, 4)});
  std::vector<std::string> lines = TreeLines(root);
  ASSERT_EQ(lines.size(), 10u);
  for (const std::string& l : lines) EXPECT_EQ(l, Json::parse(l).dump());
  EXPECT_EQ(
      lines[1],
      R"({"continueOnFail":true,"d":1,"id":"a\"b\\c","k":"task","label":"tab\there \u0001 ",)"
      R"("mode":"static","output":"out","retries":2,"skipIf":true,"timeoutMs":1234567890123,)"
      R"("value":{"a":[1.5,"x\ny",null],"z":1}})");
  EXPECT_EQ(lines[4], R"({"approval":{"onDeny":"fail","owner":"o\"wner"},"d":2,"id":"gate",)"
                      R"("k":"task","mode":"approval","output":"out"})");
  EXPECT_EQ(lines[6], R"({"d":2,"id":"l","k":"loop","maxIterations":3,"onMaxReached":"fail",)"
                      R"("until":true})");
  // Invalid UTF-8 is refused as Json refuses it.
  EXPECT_ANY_THROW(TreeLines(Workflow("bad \xff", {})));
}

TEST(FrameCodec, RoundTripOverRandomEdits) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  Node root = Workflow("wf", {});
  int next_id = 0;
  FrameEncoder enc;
  Frames all;
  size_t last_key = 0;
  int keyframes = 0, deltas = 0;
  for (int step = 0; step < 600; ++step) {
    RandomEdit(rng, root, next_id);
    std::vector<std::string> lines = TreeLines(root);
    EncodedFrame f = enc.Encode(lines);
    ASSERT_EQ(f.hash, HashLines(lines));
    ASSERT_EQ(enc.lines(), lines);
    if (step == 0) {
      ASSERT_EQ(f.encoding, "keyframe");
    }
    if (f.encoding == "keyframe") {
      last_key = all.size();
      ++keyframes;
    } else {
      ASSERT_EQ(f.encoding, "delta");
      ++deltas;
    }
    all.emplace_back(f.encoding, f.data);

    // From the last keyframe, and (every 50 steps) from the first frame,
    // the frames give this tree.
    if (step % 50 == 49) {
      Result<std::vector<std::string>> from_start = DecodeFrames(all);
      ASSERT_TRUE(from_start.ok()) << from_start.status().ToString();
      ASSERT_EQ(*from_start, lines) << "step " << step;
    }
    Frames tail(all.begin() + static_cast<long>(last_key), all.end());
    Result<std::vector<std::string>> from_key = DecodeFrames(tail);
    ASSERT_TRUE(from_key.ok()) << from_key.status().ToString();
    ASSERT_EQ(*from_key, lines) << "step " << step;
  }
  EXPECT_GT(deltas, keyframes) << "mostly small edits should be stored as deltas";
}

TEST(FrameCodec, ResetContinuesAfterDecodedFrames) {
  // What the engine does on resume: decode the stored frames, Reset, go on.
  std::mt19937 rng(7);
  Node root = Workflow("wf", {});
  int next_id = 0;
  FrameEncoder first;
  Frames stored;
  size_t delta_bytes = 0;
  for (int i = 0; i < 40; ++i) {
    RandomEdit(rng, root, next_id);
    EncodedFrame f = first.Encode(TreeLines(root));
    delta_bytes = f.encoding == "keyframe" ? 0 : delta_bytes + f.data.size();
    stored.emplace_back(f.encoding, f.data);
  }
  Result<std::vector<std::string>> decoded = DecodeFrames(stored);
  ASSERT_TRUE(decoded.ok());
  FrameEncoder second;
  second.Reset(*decoded, delta_bytes);
  for (int i = 0; i < 40; ++i) {
    RandomEdit(rng, root, next_id);
    std::vector<std::string> lines = TreeLines(root);
    EncodedFrame a = first.Encode(lines);
    EncodedFrame b = second.Encode(lines);
    EXPECT_EQ(a.encoding, b.encoding);
    EXPECT_EQ(a.data, b.data);
    stored.emplace_back(b.encoding, b.data);
    Result<std::vector<std::string>> now = DecodeFrames(stored);
    ASSERT_TRUE(now.ok());
    ASSERT_EQ(*now, lines);
  }
}

TEST(FrameCodec, GrowingTreeStaysWithinTwiceKeyframePlusChanges) {
  // 2000 renders, each adding one task: without deltas the frames would hold
  // ~2000^2/2 lines.
  Node root = Workflow("wf", {});
  FrameEncoder enc;
  Frames all;
  size_t total = 0, changes = 0, naive = 0;
  int keyframes = 0;
  // The lines are kept incrementally (TreeLines of the whole tree per step
  // would make the test quadratic); they are checked against TreeLines below.
  std::vector<std::string> lines = TreeLines(root);
  size_t full_size = 0;
  for (int i = 0; i < 2000; ++i) {
    Node task = StaticTask("task-" + std::to_string(i), "out", {{"i", i}});
    lines.push_back(TreeLines(Workflow("wf", {task}))[1]);
    root.children.push_back(std::move(task));
    changes += lines.back().size() + 1;
    EncodedFrame f = enc.Encode(lines);
    total += f.data.size();
    full_size = std::string(R"({"lines":[]})").size() + lines.size() - 1;  // + commas
    for (const auto& l : lines) full_size += l.size();
    naive += full_size;
    if (f.encoding == "keyframe") {
      ++keyframes;
      EXPECT_EQ(f.data.size(), full_size);
    }
    all.emplace_back(f.encoding, f.data);
  }
  ASSERT_EQ(lines, TreeLines(root));
  const size_t bound = 2 * (full_size + changes);
  RecordProperty("total_bytes", static_cast<int>(total));
  RecordProperty("keyframes", keyframes);
  EXPECT_LE(total, bound) << "total " << total << ", final keyframe " << full_size << ", changes "
                          << changes << ", keyframes " << keyframes;
  EXPECT_LT(total * 50, naive) << "deltas should save most of the naive size";
  EXPECT_LE(keyframes, 20) << "keyframes should be rare (geometric) for a growing tree";
  Result<std::vector<std::string>> decoded = DecodeFrames(all);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, TreeLines(root));
}

// A frame's hash resumes from the previous frame's state within their
// common prefix: still exactly HashLines, wherever the edit falls (before,
// at and after each checkpoint), and after a Reset.
TEST(FrameCodec, HashOfEachFrameIsHashLinesWhereverTheTreeChanges) {
  std::vector<Node> kids;
  for (int i = 0; i < 70; ++i) kids.push_back(StaticTask("t" + std::to_string(i), "o", i));
  Node root = Workflow("wf", {Sequence(kids)});
  FrameEncoder enc;
  std::vector<std::string> lines = TreeLines(root);
  ASSERT_EQ(enc.Encode(lines).hash, HashLines(lines));
  auto& tasks = root.children[0].children;
  for (size_t at : {0, 14, 15, 16, 17, 31, 32, 33, 50, 69}) {
    tasks[at].task.value = Json(1000 + static_cast<int>(at));
    lines = TreeLines(root);
    ASSERT_EQ(enc.Encode(lines).hash, HashLines(lines)) << "edit at " << at;
  }
  tasks.push_back(StaticTask("grown", "o", 1));
  lines = TreeLines(root);
  ASSERT_EQ(enc.Encode(lines).hash, HashLines(lines)) << "grown";
  tasks.erase(tasks.begin() + 5, tasks.begin() + 40);
  lines = TreeLines(root);
  ASSERT_EQ(enc.Encode(lines).hash, HashLines(lines)) << "shrunk";
  FrameEncoder resumed;
  resumed.Reset(lines, 0);
  tasks[3].task.value = Json("changed");
  lines = TreeLines(root);
  ASSERT_EQ(resumed.Encode(lines).hash, HashLines(lines)) << "after Reset";
}

TEST(FrameCodec, SameTreeGivesAnEmptyDelta) {
  Node root = Workflow("wf", {StaticTask("a", "out", 1), StaticTask("b", "out", 2)});
  FrameEncoder enc;
  (void)enc.Encode(TreeLines(root));
  EncodedFrame f = enc.Encode(TreeLines(root));
  EXPECT_EQ(f.encoding, "delta");
  EXPECT_EQ(f.data, R"({"prefix":3,"suffix":0,"insert":[]})");
}

// Golden values: frames are persisted (_smithers_frames: encoding, data,
// xml_hash) and decoded by later binaries, so a change to any literal here is
// a persisted-format change: it needs a migration (or a new encoding name the
// decoder also accepts), not a new literal here.
TEST(FrameCodec, GoldenKeyframeAndDelta) {
  Node v1 = Workflow("wf", {StaticTask("a", "out", 1), CommandTask("c", "out", {"echo", "hi"})});
  Node v2 = Workflow("wf", {StaticTask("a", "out", 1), StaticTask("b", "out", {{"k", "v"}}),
                            CommandTask("c", "out", {"echo", "hi"})});
  FrameEncoder enc;
  EncodedFrame key = enc.Encode(TreeLines(v1));
  EXPECT_EQ(key.encoding, "keyframe");
  EXPECT_EQ(
      key.data,
      R"({"lines":[{"d":0,"id":"wf","k":"workflow"},)"
      R"({"d":1,"id":"a","k":"task","mode":"static","output":"out","value":1},)"
      R"({"argv":["echo","hi"],"d":1,"id":"c","k":"task","mode":"command","output":"out"}]})");
  EXPECT_EQ(key.hash, "3d8779e2ea643637612fef06514317531b9b03905313a87ca06f91fe23025632");
  EncodedFrame delta = enc.Encode(TreeLines(v2));
  EXPECT_EQ(delta.encoding, "delta");
  EXPECT_EQ(delta.data,
            R"({"prefix":2,"suffix":1,"insert":[)"
            R"({"d":1,"id":"b","k":"task","mode":"static","output":"out","value":{"k":"v"}}]})");
  EXPECT_EQ(delta.hash, "c49598d9d5a0bcf2feb5fed95ad659388c4b2d43148dbf066af8ac9d6655191b");
  Result<std::vector<std::string>> decoded =
      DecodeFrames({{key.encoding, key.data}, {delta.encoding, delta.data}});
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, TreeLines(v2));
}

TEST(FrameCodec, RepeatedLinesDoNotOverlapPrefixAndSuffix) {
  // [x, x] -> [x, x, x]: prefix 2 leaves one line of the old frame for the
  // suffix, never more than it has.
  std::vector<std::string> two = {R"({"d":0})", R"({"d":0})"};
  std::vector<std::string> three = {R"({"d":0})", R"({"d":0})", R"({"d":0})"};
  FrameEncoder enc;
  Frames frames;
  for (const auto* lines : {&two, &three, &two, &three}) {
    EncodedFrame f = enc.Encode(*lines);
    frames.emplace_back(f.encoding, f.data);
    Result<std::vector<std::string>> d = DecodeFrames(frames);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(*d, *lines);
  }
}

TEST(FrameCodec, MalformedFramesAreDataLoss) {
  auto code = [](Frames f) { return DecodeFrames(f).status().code(); };
  EXPECT_EQ(code({{"delta", R"({"prefix":0,"suffix":0,"insert":[]})"}}), StatusCode::kDataLoss);
  EXPECT_EQ(code({{"keyframe", "not json"}}), StatusCode::kDataLoss);
  EXPECT_EQ(code({{"keyframe", R"({"nope":1})"}}), StatusCode::kDataLoss);
  EXPECT_EQ(code({{"keyframe", R"({"lines":[{"d":0}]})"},
                  {"delta", R"({"prefix":1,"suffix":1,"insert":[]})"}}),
            StatusCode::kDataLoss);
  EXPECT_EQ(
      code({{"keyframe", R"({"lines":[]})"}, {"delta", R"({"prefix":-1,"suffix":0,"insert":[]})"}}),
      StatusCode::kDataLoss);
  EXPECT_EQ(code({{"zstd", "{}"}}), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace smithers::core
