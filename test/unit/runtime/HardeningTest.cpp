// Bad input and hostile conditions, reader by reader (issue 15): deep JSON,
// overflowing shapes, ids beyond int64, pipes and devices as data, damaged
// checkpoints, concurrent runs on one --out or one metrics file, leftovers
// of killed writes, out-of-range numbers on the command line.
#include "runtime/cli/Numbers.h"
#include "runtime/data/Dataset.h"
#include "runtime/plan/Plan.h"
#include "runtime/train/Checkpoint.h"
#include "runtime/train/MetricsLog.h"
#include "runtime/train/OutputLock.h"
#include "runtime/util/File.h"
#include "runtime/util/Json.h"
#include "runtime/util/Safetensors.h"

#include "TestUtil.h"

#include <gtest/gtest.h>

#include <csignal>
#include <cstring>
#include <thread>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace tessera;
using tessera::test::TempDir;
using json = nlohmann::json;

namespace {

std::string nested(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

template <typename F> std::string errorOf(F f) {
  try {
    f();
  } catch (const std::exception &e) {
    return e.what();
  }
  return "(no error)";
}

// A pid that is certainly not running: a child that has exited and been reaped.
pid_t deadPid() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  return pid;
}

} // namespace

TEST(Hardening, DeepJsonIsOneShortError) {
  EXPECT_EQ(errorOf([] { util::parseJson(nested(100000)); }), "nested deeper than 64 levels at byte 64");
  EXPECT_NO_THROW(util::parseJson(nested(64)));
  // Strings do not count: brackets inside them are text.
  EXPECT_NO_THROW(util::parseJson("[\"" + std::string(1000, '[') + "\\\"[\"]"));
  // A value of any depth prints in a bounded number of characters (built
  // without the parser, as a reader could receive it).
  json deep = json::array();
  for (int i = 0; i < 100000; ++i) deep = json::array({std::move(deep)});
  std::string d = util::describeJson(deep);
  EXPECT_LT(d.size(), 100u) << d;
  EXPECT_EQ(d, "[[[[...]]]]");
  EXPECT_EQ(util::describeJson(json(std::string(500, 'x'))).size(), 40u);
  EXPECT_EQ(util::describeJson(json::parse("[1, 2, [3, 4]]")), "[1,2,[3,4]]");
}

TEST(Hardening, DeepJsonInEachReader) {
  // Data line: the error names the line and stays short.
  std::string e = errorOf([] { data::Dataset::parseJsonl("{\"input_ids\": " + nested(100000) + "}\n", "d.jsonl", 0); });
  EXPECT_EQ(e, "d.jsonl:1: not valid JSON: nested deeper than 64 levels at byte 77");
  // A nested value the reader can name: printed briefly.
  e = errorOf([] { data::Dataset::parseJsonl("{\"input_ids\": [1, " + nested(60) + "]}\n", "d.jsonl", 0); });
  EXPECT_EQ(e, "d.jsonl:1: input_ids[1] = [[[[...]]]] is not an integer");
  // Safetensors header.
  std::string header = "{\"t\": {\"dtype\": \"F32\", \"shape\": " + nested(100000) + ", \"data_offsets\": [0, 4]}}";
  std::vector<uint8_t> st(8 + header.size() + 4, 0);
  uint64_t n = header.size();
  std::memcpy(st.data(), &n, 8);
  std::memcpy(st.data() + 8, header.data(), header.size());
  e = errorOf([&] { util::parseSafetensors(st.data(), st.size(), "a.safetensors"); });
  EXPECT_EQ(e, "a.safetensors: safetensors header is not valid JSON: nested deeper than 64 levels at byte 94");
}

TEST(Hardening, SafetensorsShapeOverflow) {
  std::string header = "{\"t\": {\"dtype\": \"F32\", \"shape\": [2147483648, 2147483648], \"data_offsets\": [0, 0]}}";
  std::vector<uint8_t> st(8 + header.size(), 0);
  uint64_t n = header.size();
  std::memcpy(st.data(), &n, 8);
  std::memcpy(st.data() + 8, header.data(), header.size());
  EXPECT_EQ(errorOf([&] { util::parseSafetensors(st.data(), st.size(), "a.safetensors"); }),
            "a.safetensors: tensor 't': shape [2147483648,2147483648] of F32 needs more bytes than the file holds (0 "
            "bytes of data)");
}

TEST(Hardening, TokenIdsBeyondInt64) {
  EXPECT_EQ(errorOf([] { data::Dataset::parseJsonl("{\"input_ids\": [1, 18446744073709551615]}", "d.jsonl", 256); }),
            "d.jsonl:1: token id 18446744073709551615 out of range for vocabulary 256");
  EXPECT_EQ(errorOf([] { data::Dataset::parseJsonl("{\"input_ids\": [1, 2], \"labels\": [-100, 9223372036854775808]}",
                                                   "d.jsonl", 0); }),
            "d.jsonl:1: label 9223372036854775808 out of range for vocabulary 0 (use -100 to ignore a position)");
}

TEST(Hardening, DataFromAFifoIsReadOnce) {
  TempDir dir;
  std::string fifo = dir / "data.fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string text = "{\"input_ids\": [1, 2, 3]}\n\n{\"input_ids\": [4, 5]}";
  std::thread writer([&] { test::writeText(fifo, text); });
  data::Dataset d = data::Dataset::readJsonl(fifo, 10);
  writer.join();
  EXPECT_EQ(d.size(), 2u);
  EXPECT_EQ(d.length(1), 2u);
  // The hash a checkpoint records is of the bytes read, the same as the file's.
  EXPECT_EQ(d.contentHash(), data::Dataset::parseJsonl(text, "x", 10).contentHash());
  EXPECT_EQ(d.contentHash(), util::fnv1a64Hex(text.data(), text.size()));
}

TEST(Hardening, DataFromDevZeroStopsAtOnce) {
  EXPECT_EQ(errorOf([] { data::Dataset::readJsonl("/dev/zero", 10); }),
            "/dev/zero: byte 0 is a NUL byte: not a JSON lines text file");
}

TEST(Hardening, EndlessLineFromAPipeStops) {
  TempDir dir;
  std::string fifo = dir / "line.fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto previous = std::signal(SIGPIPE, SIG_IGN); // the reader stops first: the writer gets EPIPE
  std::thread writer([&] {
    FILE *f = std::fopen(fifo.c_str(), "w");
    std::string chunk(1 << 20, ' ');
    chunk[0] = '{';
    for (int i = 0; i < 80 && std::fwrite(chunk.data(), 1, chunk.size(), f) == chunk.size(); ++i) chunk[0] = ' ';
    std::fclose(f);
  });
  std::string e = errorOf([&] { data::Dataset::readJsonl(fifo, 10); });
  writer.join();
  std::signal(SIGPIPE, previous);
  EXPECT_EQ(e, fifo + ":1: the line is longer than 64 MiB");
}

TEST(Hardening, CheckpointChecksumAndCounts) {
  TempDir dir;
  train::CheckpointState s;
  s.step = 3;
  s.updates = 2;
  s.skipped_steps = 1;
  s.settings = {{"--steps", "10"}};
  s.tensors["a"] = {"a", {2}, {1.5f, -2}};
  train::writeCheckpoint(dir / "out", s);
  std::optional<train::CheckpointState> back = train::readCheckpoint(dir / "out");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->tensors.at("a").data, (std::vector<float>{1.5f, -2}));
  // One bit flipped in the tensor file.
  std::string tensors = dir / "out/checkpoint/step-00000003.safetensors";
  std::string bytes = test::readText(tensors);
  bytes[bytes.size() - 1] ^= 0x01;
  test::writeText(tensors, bytes);
  EXPECT_EQ(errorOf([&] { train::readCheckpoint(dir / "out"); }),
            tensors + ": checksum mismatch: the tensor file is damaged");
  // Counts that no run can produce.
  std::string state = dir / "out/checkpoint/state.json";
  json st = json::parse(test::readText(state));
  st["updates"] = uint64_t(1) << 62;
  test::writeText(state, st.dump());
  EXPECT_EQ(errorOf([&] { train::readCheckpoint(dir / "out"); }),
            state + ": 'updates' (4611686018427387904) + 'skipped_steps' (1) must equal 'step' (3)");
  st["updates"] = 2;
  st["tensors"] = "../state.json";
  test::writeText(state, st.dump());
  EXPECT_EQ(errorOf([&] { train::readCheckpoint(dir / "out"); }),
            state + ": 'tensors' must be a file name in the checkpoint directory");
  EXPECT_THROW(train::readCheckpoint(dir / "out"), train::CheckpointError);
}

TEST(Hardening, OneRunPerOut) {
  TempDir dir;
  {
    train::OutputLock lock(dir / "adapter");
    EXPECT_EQ(test::readText(dir / "adapter.lock"), std::to_string(getpid()) + "\n");
    std::string e = errorOf([&] { train::OutputLock again(dir / "adapter/"); });
    EXPECT_EQ(e, dir / "adapter/" + " is in use by another `tessera train` (pid " + std::to_string(getpid()) +
                     ", lock " + dir / "adapter.lock" + "): wait for it to finish, or train into another --out");
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "adapter.lock")); // removed at the end
  // A lock file left by a killed run (its flock died with it) is taken over.
  test::writeText(dir / "adapter.lock", std::to_string(deadPid()) + "\n");
  train::OutputLock lock(dir / "adapter");
  EXPECT_EQ(test::readText(dir / "adapter.lock"), std::to_string(getpid()) + "\n");
}

TEST(Hardening, MetricsLinesStayWholeUnderConcurrentWriters) {
  TempDir dir;
  std::string path = dir / "m.jsonl";
  test::writeText(path, "{\"step\": 1}\n{\"step\": 2}\n{\"step\": 3}\n");
  { train::MetricsLog resumed(path, 2); } // alone: keeps the steps up to the checkpoint
  EXPECT_EQ(test::readText(path), "{\"step\": 1}\n{\"step\": 2}\n");
  { train::MetricsLog fresh(path, -1); } // alone: starts over
  EXPECT_EQ(test::readText(path), "");
  // Four processes append 500 long lines each to one file.
  std::vector<pid_t> kids;
  for (int k = 0; k < 4; ++k) {
    pid_t pid = fork();
    if (pid == 0) {
      train::MetricsLog log(path, -1);
      for (int i = 0; i < 500; ++i)
        log.append(json({{"writer", k}, {"step", i}, {"pad", std::string(3000, 'a' + char(k))}}).dump() + "\n");
      _exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t p : kids) waitpid(p, nullptr, 0);
  std::vector<std::string> lines = test::lines(test::readText(path));
  // Writers that started after the first one was writing append; the first
  // may have truncated only before anyone wrote. Every line is whole.
  std::map<int, int> perWriter;
  for (const std::string &l : lines) {
    json m = json::parse(l); // throws on a torn line
    ++perWriter[m["writer"].get<int>()];
  }
  int total = 0;
  for (auto &[w, n] : perWriter) total += n;
  EXPECT_EQ(total, int(lines.size()));
  EXPECT_GE(perWriter.size(), 1u);
  for (auto &[w, n] : perWriter) EXPECT_EQ(n, 500) << "writer " << w << " lost lines";
}

TEST(Hardening, StaleTemporariesAreRemoved) {
  TempDir dir;
  std::string dead = std::to_string(deadPid()), alive = std::to_string(getpid());
  std::filesystem::create_directories(dir / "out");
  std::filesystem::create_directories(dir / ("out.tmp-" + dead + "-00ab12"));
  test::writeText(dir / ("out.tmp-" + dead + "-00ab12/adapter_model.safetensors"), "x");
  test::writeText(dir / ("out/adapter_model.safetensors.tmp-" + dead + "-abcdef"), "x");
  test::writeText(dir / ("out/adapter_config.json.tmp-" + alive + "-abcdef"), "x"); // a live writer's
  test::writeText(dir / "out/notes.tmp-1-xyz", "x");                                 // not our pattern
  test::writeText(dir / ("other.tmp-" + dead + "-00ab12"), "x");                     // not of this path
  EXPECT_EQ(util::removeStaleTemporaries(dir / "out"), 2u);
  EXPECT_FALSE(std::filesystem::exists(dir / ("out.tmp-" + dead + "-00ab12")));
  EXPECT_FALSE(std::filesystem::exists(dir / ("out/adapter_model.safetensors.tmp-" + dead + "-abcdef")));
  EXPECT_TRUE(std::filesystem::exists(dir / ("out/adapter_config.json.tmp-" + alive + "-abcdef")));
  EXPECT_TRUE(std::filesystem::exists(dir / "out/notes.tmp-1-xyz"));
  EXPECT_TRUE(std::filesystem::exists(dir / ("other.tmp-" + dead + "-00ab12")));
}

TEST(Hardening, StrictNumbersOnTheCommandLine) {
  auto check = [](CLI::Validator v, std::string text) { return v(text); };
  EXPECT_EQ(check(cli::integerIn(1, 1000), "99999999999999999999"),
            "'99999999999999999999' is out of range: expected an integer in [1, 1000]");
  EXPECT_EQ(check(cli::integerIn(1, 65536), "2147483648"), "'2147483648' is out of range: expected an integer in [1, 65536]");
  EXPECT_EQ(check(cli::integerIn(1, 65536), "3e9"), "'3e9' is not an integer");
  EXPECT_EQ(check(cli::integerIn(1, 65536), "0"), "'0' is out of range: expected an integer in [1, 65536]");
  EXPECT_EQ(check(cli::integerIn(1, 65536), "+7"), "");
  EXPECT_EQ(check(cli::unsignedInteger(), "18446744073709551616"), "'18446744073709551616' is out of range: expected 0 .. 2^64-1");
  EXPECT_EQ(check(cli::unsignedInteger(), "18446744073709551615"), "");
  EXPECT_EQ(check(cli::finiteNumber(), "nan"), "'nan' is not a finite number");
  EXPECT_EQ(check(cli::finiteNumber(), "-inf"), "'-inf' is not a finite number");
  EXPECT_EQ(check(cli::finiteNumber(), "1e999"), "'1e999' is not a finite number");
  EXPECT_EQ(check(cli::finiteNumber(), "2e-4"), "");
}

TEST(Hardening, PlanManifestNestedDeep) {
  // Header of a plan whose manifest is deeply nested (checksum valid).
  std::string manifest = "{\"model_file\": " + nested(100000) + "}";
  std::vector<uint8_t> b(32 + manifest.size(), 0);
  std::memcpy(b.data(), "TESSPLAN", 8);
  b[8] = uint8_t(plan::kFormatVersion);
  uint64_t n = manifest.size();
  std::memcpy(b.data() + 16, &n, 8);
  std::memcpy(b.data() + 32, manifest.data(), manifest.size());
  util::Fnv1a64 f;
  f.update(b.data() + 32, b.size() - 32);
  uint64_t h = f.h;
  std::memcpy(b.data() + 24, &h, 8);
  EXPECT_EQ(errorOf([&] { plan::parse(b, "p.tplan"); }),
            "p.tplan: the manifest is not valid JSON: nested deeper than 64 levels at byte 78");
}
