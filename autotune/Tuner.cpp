// Tuner.cpp - the on-device tuner: worker (search and measurements),
// supervisor (watchdog, progress, the profile). See Tuner.h and
// docs/autotune.md, "Tuning on the device".
//
// The search, per problem (a worker replays it from the journal, so a
// resumed run measures only what is missing):
//   1. problems in decreasing estimated share of the step (occurrences x a
//      roofline estimate: estimatedShare), so that a short budget is spent
//      on the hot products;
//   2. per problem: the reference kernel and the rules' config (the
//      baseline), then the search, with the problem's share of the
//      remaining budget: small spaces
//      (<= 12 candidates) exhaustively in prior order; large ones (matmul)
//      the first 6 in prior order (the rules, what other profiles pick, a
//      spread of the space), then always the candidate a cost model fitted
//      to this problem's measurements predicts fastest, until the
//      allotment is spent or 8 picks in a row did not improve the best;
//   3. the 3 fastest again, and the rules' config (a second round of timed
//      runs); the winner is the best median over both rounds, and another
//      config than the rules' wins only by a margin (winMargin). The rules' config is
//      timed first in round 0, when the device has been idle longest (a GPU
//      that has just left its low clocks makes it look slow): its second run
//      sits among the candidates', and a winner by a hair is noise.
// Every candidate's output is compared with the reference kernel's before
// it is timed: a wrong one is rejected (never chosen), counted and printed.
#include "autotune/Tuner.h"

#include "autotune/Bench.h"
#include "autotune/CostModel.h"
#include "autotune/TuningPlan.h"
#include "runtime/train/Progress.h"
#include "runtime/train/Trainer.h"
#include "runtime/util/File.h"
#include "runtime/vulkan/Context.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

namespace tessera::autotune {

using json = nlohmann::json;

namespace {

double nowEpoch() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string hex64(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
  return buf;
}

DeviceIdentity identityOf(const vk::DeviceInfo &d) {
  DeviceIdentity id;
  id.vendor_id = d.vendorID;
  id.device_id = d.deviceID;
  id.driver_version = d.driverVersion;
  id.name = d.name;
  id.driver = d.driver;
  id.type = d.type;
  return id;
}

std::string identityKey(const DeviceIdentity &d) {
  return describeIdentity(d) + " driver " + std::to_string(d.driver_version);
}

bool familySelected(const TuneOptions &o, const TuneProblem &p) {
  if (o.families.empty())
    return true;
  return std::find(o.families.begin(), o.families.end(), ruleFamilyName(p.shape.family)) != o.families.end();
}

// ---------------------------------------------------------------------------
// The journal: one JSON object per line.
//   {"type": "header", "digest": ..., "device": ..., "version": ...}
//   {"type": "start", "p": P, "c": C, "round": R}      C = -1: the reference
//   {"type": "result", "p": P, "c": C, "round": R, "status": ..., "us": ..., ...}

struct Key {
  int p, c, round;
  bool operator<(const Key &o) const { return std::tie(p, c, round) < std::tie(o.p, o.c, o.round); }
};

struct Journal {
  std::string path;
  std::map<Key, Measurement> results;
  std::vector<Key> open; // started, no result (the last one a dead worker left)

  static Measurement measurementOf(const json &j) {
    Measurement m;
    m.status = j.value("status", "failed");
    m.us = j.value("us", 0.0);
    m.max_error = j.value("err", 0.0);
    m.reason = j.value("reason", "");
    m.reps = j.value("reps", 1);
    m.rejected_samples = j.value("outliers", 0);
    if (auto s = j.find("samples"); s != j.end() && s->is_array())
      for (const json &v : *s)
        if (v.is_number())
          m.samples.push_back(v.get<double>());
    return m;
  }

  // Reads the journal; a header of another plan or device means starting
  // over (the worker reads the journal its supervisor checked: null).
  void load(const std::string *digest, const std::string *device, std::string &note,
            const uint64_t *coldCache = nullptr) {
    results.clear();
    open.clear();
    std::ifstream in(path);
    if (!in)
      return;
    std::string line;
    bool header = false;
    std::set<Key> started;
    while (std::getline(in, line)) {
      json j;
      try {
        j = json::parse(line);
      } catch (const json::exception &) {
        continue; // a line cut short by a crash
      }
      if (!j.is_object())
        continue;
      std::string type = j.value("type", "");
      if (type == "header") {
        if ((digest && j.value("digest", "") != *digest) || (device && j.value("device", "") != *device)) {
          note = path + " is the journal of another tuning plan or device: starting over";
          results.clear();
          open.clear();
          return;
        }
        // Times taken with warm and with cold caches do not compare (a journal
        // from before the setting existed was warm).
        if (coldCache && j.value("cold_cache_bytes", uint64_t(0)) != *coldCache) {
          note = path + " was measured with another --cold-cache setting: starting over";
          results.clear();
          open.clear();
          return;
        }
        header = true;
        continue;
      }
      if (!header)
        continue;
      Key k{j.value("p", -2), j.value("c", -2), j.value("round", 0)};
      if (type == "start")
        started.insert(k);
      else if (type == "result") {
        results[k] = measurementOf(j);
        started.erase(k);
      }
    }
    if (!header && !results.empty())
      note = path + " has no header: starting over";
    open.assign(started.begin(), started.end());
  }

  static void appendLine(const std::string &path, const json &j) {
    std::string text = j.dump() + "\n";
    FILE *f = std::fopen(path.c_str(), "ab");
    if (!f)
      throw std::runtime_error(path + ": cannot write the tuning journal: " + std::strerror(errno));
    std::fwrite(text.data(), 1, text.size(), f);
    std::fflush(f);
    fsync(fileno(f));
    std::fclose(f);
  }

  static json resultLine(const Key &k, const Measurement &m) {
    json j = {{"type", "result"}, {"p", k.p}, {"c", k.c}, {"round", k.round}, {"status", m.status}};
    if (m.us > 0)
      j["us"] = m.us;
    if (!m.samples.empty())
      j["samples"] = m.samples;
    if (m.rejected_samples)
      j["outliers"] = m.rejected_samples;
    if (m.max_error > 0 && std::isfinite(m.max_error))
      j["err"] = m.max_error;
    if (!m.reason.empty())
      j["reason"] = m.reason;
    if (m.reps > 1)
      j["reps"] = m.reps;
    if (!m.phases.empty()) {
      json ph = json::object();
      for (auto &[k, v] : m.phases)
        ph[k] = std::round(v * 1e4) / 1e4;
      j["phases"] = ph;
    }
    return j;
  }
};

// ---------------------------------------------------------------------------
// The worker.

// A problem's time in the step before anything is measured (occurrences x a
// roofline at nominal rates; only the order and the budget shares use it):
// the hot products are measured and searched first, so a short budget goes
// where the step's time is.
double estimatedShare(const TuneProblem &tp) {
  const ProblemShape &s = tp.shape;
  const double eb = double(std::max<int64_t>(s.element_bytes, 1));
  double seconds = 0;
  switch (s.family) {
  case RuleFamily::Matmul: {
    const double m = double(s.m), n = double(s.n), k = double(s.k), b = double(std::max<int64_t>(s.batch, 1));
    seconds = b * (2 * m * n * k / 20e12 + (m * k + k * n + m * n) * eb / 2e12);
    break;
  }
  default: { // memory-bound: rows x reduced length, or elements, read and written
    const double work = s.outputs > 0 ? double(s.outputs) * double(std::max<int64_t>(s.extent, 1)) : double(s.elements);
    seconds = work * eb * 3 / 2e12;
    break;
  }
  }
  return double(std::max<int64_t>(tp.count, 1)) * (seconds + 5e-6); // + a dispatch's fixed cost
}

class Worker {
public:
  Worker(const TuneOptions &o, double deadline) : o_(o), deadline_(deadline) {
    t_ = readTuningPlanFile(o.ttune);
    journal_.path = o.journal;
    std::string note;
    journal_.load(nullptr, nullptr, note); // the supervisor checked the header
  }

  int run() {
    ctx_ = std::make_unique<vk::Context>(o_.device);
    if (!ctx_->info().timestamps)
      throw std::runtime_error(ctx_->info().name + " has no compute timestamps: it cannot be tuned");
    // Problems in decreasing estimated share of the step; each gets its
    // baseline, then its share of what is left of the budget.
    std::vector<std::pair<double, size_t>> order;
    for (size_t p = 0; p < t_.problems.size(); ++p)
      if (familySelected(o_, t_.problems[p]))
        order.push_back({estimatedShare(t_.problems[p]), p});
    std::stable_sort(order.begin(), order.end(), [](auto &a, auto &b) { return a.first > b.first; });
    double weightLeft = 0;
    for (auto &[w, p] : order)
      weightLeft += w;
    for (auto &[w, p] : order) {
      if (timeUp())
        break;
      measure(p, int(t_.problems[p].rule), 0);
      double allot = weightLeft > 0 ? (deadline_ - nowEpoch()) * w / weightLeft : 0;
      weightLeft -= w;
      search(p, allot);
    }
    return 0;
  }

private:
  bool timeUp() const { return nowEpoch() >= deadline_; }

  const Measurement *result(size_t p, int c, int round) const {
    auto it = journal_.results.find({int(p), c, round});
    return it == journal_.results.end() ? nullptr : &it->second;
  }

  ProblemBench &bench(size_t p) {
    if (!bench_ || benchProblem_ != p) {
      bench_.reset();
      BenchOptions bo;
      bo.repeats = o_.repeats;
      bo.cold_cache_bytes = o_.cold_cache_bytes < 0 ? coldCacheBytes(ctx_->info()) : uint64_t(o_.cold_cache_bytes);
      bench_ = std::make_unique<ProblemBench>(*ctx_, t_, p, o_.ttune, bo);
      benchProblem_ = p;
    }
    return *bench_;
  }

  // Test hook (docs/autotune.md, "Tests"): TESSERA_TUNE_FAULT is a comma-
  // separated list of <what>:<problem>:<candidate> with what = hang | lost |
  // crash: this worker hangs, loses the device or dies when it measures
  // that candidate.
  void injectFault(size_t p, int c) {
    const char *env = std::getenv("TESSERA_TUNE_FAULT");
    if (!env)
      return;
    std::stringstream list(env);
    std::string item;
    while (std::getline(list, item, ',')) {
      char what[16] = "";
      int fp = -1, fc = -1;
      if (std::sscanf(item.c_str(), "%15[a-z]:%d:%d", what, &fp, &fc) != 3 || fp != int(p) || fc != c)
        continue;
      if (!std::strcmp(what, "hang"))
        for (;;)
          std::this_thread::sleep_for(std::chrono::seconds(1));
      if (!std::strcmp(what, "lost"))
        throw vk::VulkanError("the GPU stopped responding (VK_ERROR_DEVICE_LOST) while running program 'x1'");
      if (!std::strcmp(what, "crash"))
        std::abort();
    }
  }

  // Measures (p, c) in `round` unless the journal has it.
  const Measurement &measure(size_t p, int c, int round) {
    if (const Measurement *m = result(p, c, round))
      return *m;
    Key k{int(p), c, round};
    Journal::appendLine(journal_.path, {{"type", "start"}, {"p", k.p}, {"c", k.c}, {"round", k.round}});
    Measurement m;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      injectFault(p, c);
      const bool fresh = !bench_ || benchProblem_ != p;
      ProblemBench &b = bench(p);
      const Measurement &ref = b.reference();
      if (ref.status != "ok") {
        m.status = "failed";
        m.reason = ref.reason;
      } else {
        m = b.measure(size_t(c));
      }
      if (fresh) // the problem's inputs and reference were made for this measurement
        for (auto &[phase, s] : ref.phases)
          m.phases["ref_" + phase] = s;
      m.phases["total"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } catch (const std::exception &e) {
      // A Vulkan error other than a lost device, a plan the runtime refuses:
      // this candidate fails, tuning goes on.
      m.status = "failed";
      m.reason = e.what();
      Journal::appendLine(journal_.path, Journal::resultLine(k, m));
      if (m.reason.find("DEVICE_LOST") != std::string::npos)
        throw DeviceLost{};
      journal_.results[k] = m;
      return journal_.results[k];
    }
    Journal::appendLine(journal_.path, Journal::resultLine(k, m));
    journal_.results[k] = m;
    return journal_.results[k];
  }

  void search(size_t p, double allot) {
    const TuneProblem &tp = t_.problems[p];
    const Measurement *base = result(p, int(tp.rule), 0);
    if (!base || base->status == "failed")
      return; // no reference or baseline: nothing can be trusted
    const size_t n = tp.candidates.size();
    const bool exhaustive = n <= 12;
    const double start = nowEpoch();
    CostModel model;
    double best = base->status == "ok" ? base->us : INFINITY;
    int streak = 0;
    auto spent = [&] { return nowEpoch() - start >= allot || timeUp(); };
    for (;;) {
      if (spent())
        break;
      // Next: prior order while the model has too little to go on.
      std::vector<size_t> todo;
      std::vector<std::vector<double>> x;
      std::vector<double> y;
      for (size_t c = 0; c < n; ++c) {
        const Measurement *m = result(p, int(c), 0);
        if (!m)
          todo.push_back(c);
        else if (m->status == "ok") {
          x.push_back(costFeatures(tp.candidates[c].config, tp.shape));
          y.push_back(m->us);
        }
      }
      if (todo.empty())
        break;
      size_t next = todo.front();
      if (!exhaustive && x.size() >= 6) {
        model.fit(x, y);
        if (model.ready()) {
          double bestPred = INFINITY;
          for (size_t c : todo) {
            double pred = model.predictUs(costFeatures(tp.candidates[c].config, tp.shape));
            if (pred < bestPred)
              bestPred = pred, next = c;
          }
        }
      }
      const Measurement &m = measure(p, int(next), 0);
      if (m.status == "ok" && m.us < best * 0.99) {
        best = m.us;
        streak = 0;
      } else {
        ++streak;
      }
      if (!exhaustive && streak >= 8)
        break;
    }
    // 3. The fastest few again.
    std::vector<std::pair<double, size_t>> ok;
    for (size_t c = 0; c < n; ++c)
      if (const Measurement *m = result(p, int(c), 0); m && m->status == "ok")
        ok.push_back({m->us, c});
    if (ok.size() < 2)
      return;
    std::sort(ok.begin(), ok.end());
    std::vector<size_t> again;
    for (size_t i = 0; i < ok.size() && i < 3; ++i)
      again.push_back(ok[i].second);
    if (std::find(again.begin(), again.end(), size_t(tp.rule)) == again.end() && base->status == "ok")
      again.push_back(size_t(tp.rule));
    for (size_t c : again) {
      if (timeUp())
        break;
      measure(p, int(c), 1);
    }
  }

public:
  struct DeviceLost {};

private:
  const TuneOptions &o_;
  double deadline_;
  TuningPlan t_;
  Journal journal_;
  std::unique_ptr<vk::Context> ctx_;
  std::unique_ptr<ProblemBench> bench_;
  size_t benchProblem_ = SIZE_MAX;
};

// ---------------------------------------------------------------------------
// The supervisor.

std::atomic<bool> gInterrupted{false};
void onInterrupt(int) { gInterrupted = true; }

struct Tally {
  size_t measured = 0, rejected = 0, failed = 0, unsupported = 0;
};

// What the journal says about each problem: the baseline, the winner.
struct Outcome {
  const Measurement *baseline = nullptr;
  double baseline_us = 0; // over both rounds, as the winner's
  int winner = -1;
  double winner_us = 0;
  size_t tried = 0; // candidates measured (round 0) besides the baseline
};

// How much faster than the rules' config another config must be to win.
constexpr double kWinMargin = 0.97;
// Elementwise and copy kernels timed alone do not keep a small win inside the
// step (H200, 2026-12-02: fourteen such choices at about 1.05x each made the
// step's elementwise kernels 9 ms slower; the reduction and softmax choices
// held up): they need a clear one.
constexpr double kWinMarginMemoryBound = 0.85;

double winMargin(const TuneProblem &tp) {
  RuleFamily f = tp.shape.family;
  return f == RuleFamily::Elementwise || f == RuleFamily::Copy ? kWinMarginMemoryBound : kWinMargin;
}

// The median over both rounds of a candidate's timed runs (0 when it has no ok result).
double combinedUs(const Journal &j, size_t p, size_t c) {
  auto r0 = j.results.find({int(p), int(c), 0});
  if (r0 == j.results.end() || r0->second.status != "ok")
    return 0;
  std::vector<double> samples = r0->second.samples;
  auto r1 = j.results.find({int(p), int(c), 1});
  if (r1 != j.results.end() && r1->second.status == "ok")
    samples.insert(samples.end(), r1->second.samples.begin(), r1->second.samples.end());
  return samples.empty() ? r0->second.us : robustMedian(samples);
}

Outcome outcomeOf(const TuningPlan &t, const Journal &j, size_t p) {
  Outcome o;
  const TuneProblem &tp = t.problems[p];
  auto it = j.results.find({int(p), int(tp.rule), 0});
  if (it != j.results.end()) {
    o.baseline = &it->second;
    o.baseline_us = combinedUs(j, p, size_t(tp.rule));
  }
  double best = INFINITY;
  for (size_t c = 0; c < tp.candidates.size(); ++c) {
    auto r0 = j.results.find({int(p), int(c), 0});
    if (r0 == j.results.end())
      continue;
    if (int(c) != int(tp.rule))
      o.tried++;
    double us = combinedUs(j, p, c);
    if (us > 0 && us < best)
      best = us, o.winner = int(c);
  }
  o.winner_us = best;
  if (o.winner >= 0 && o.winner != int(tp.rule) && o.baseline_us > 0 && best > o.baseline_us * winMargin(tp))
    o.winner = int(tp.rule), o.winner_us = o.baseline_us;
  return o;
}

class Supervisor {
public:
  explicit Supervisor(const TuneOptions &o) : o_(o) {
    std::vector<uint8_t> bytes;
    try {
      bytes = util::readFile(o.ttune);
    } catch (const std::runtime_error &e) {
      throw TuningPlanError(e.what());
    }
    t_ = parseTuningPlan(bytes, o.ttune);
    digest_ = hex64(tuningPlanDigest(bytes));
    base_ = parseProfile(t_.profile_json, o.ttune + ": profile");
    base_.origin = o.ttune + " (compiled with profile '" + base_.name + "')";
  }

  void run() {
    std::vector<vk::DeviceInfo> devices = vk::Context::listDevices();
    if (o_.device < 0 || size_t(o_.device) >= devices.size())
      throw std::runtime_error("device " + std::to_string(o_.device) + " does not exist (" +
                               std::to_string(devices.size()) + " Vulkan devices, see `tessera devices`)");
    info_ = devices[size_t(o_.device)];
    id_ = identityOf(info_);
    checkProfileForDevice(base_, id_);
    // An existing output profile is merged into, if it is this device's.
    if (std::ifstream(o_.out)) {
      existing_ = std::make_unique<DeviceProfile>(loadProfile(o_.out));
      checkProfileForDevice(*existing_, id_);
    }
    for (size_t p = 0; p < t_.problems.size(); ++p)
      if (familySelected(o_, t_.problems[p]))
        selected_.push_back(p);
    if (selected_.empty())
      throw std::runtime_error(o_.ttune + ": no problem of the families given to --families");

    journal_.path = o_.journal;
    std::string note;
    std::string device = identityKey(id_);
    const uint64_t coldCache = o_.cold_cache_bytes < 0 ? coldCacheBytes(info_) : uint64_t(o_.cold_cache_bytes);
    if (!o_.restart)
      journal_.load(&digest_, &device, note, &coldCache);
    if (!note.empty())
      std::fprintf(stderr, "note: %s\n", note.c_str());
    if (o_.restart || !note.empty() || !std::ifstream(o_.journal)) {
      util::writeFileAtomic(o_.journal, json({{"type", "header"},
                                              {"digest", digest_},
                                              {"device", identityKey(id_)},
                                              {"cold_cache_bytes", coldCache},
                                              {"version", tesseraVersion()}})
                                                .dump() +
                                            "\n");
      journal_.results.clear();
      journal_.open.clear();
    } else if (!journal_.results.empty()) {
      std::fprintf(stderr, "resuming from %s: %zu measurements kept\n", o_.journal.c_str(), journal_.results.size());
    }
    // A measurement a dead supervisor left open is retried.
    const uint64_t scrub = o_.cold_cache_bytes < 0 ? coldCacheBytes(info_) : uint64_t(o_.cold_cache_bytes);
    std::printf("tuning %s on device %d: %s (%s), %zu kernel problems, budget %s, %s\n", o_.ttune.c_str(), o_.device,
                info_.name.c_str(), info_.driver.c_str(), selected_.size(), train::formatDuration(o_.budget_s).c_str(),
                scrub ? ("cold caches (" + std::to_string(scrub >> 20) + " MiB scrub per repetition)").c_str()
                      : "warm caches");
    std::fflush(stdout);

    start_ = nowEpoch();
    deadline_ = start_ + o_.budget_s;
    struct sigaction sa {}, oldInt{}, oldTerm{};
    sa.sa_handler = onInterrupt;
    sigaction(SIGINT, &sa, &oldInt);
    sigaction(SIGTERM, &sa, &oldTerm);
    gInterrupted = false;
    try {
      supervise();
    } catch (...) {
      sigaction(SIGINT, &oldInt, nullptr);
      sigaction(SIGTERM, &oldTerm, nullptr);
      throw;
    }
    sigaction(SIGINT, &oldInt, nullptr);
    sigaction(SIGTERM, &oldTerm, nullptr);
    if (gInterrupted) {
      clearLine();
      throw train::Interrupted("interrupted: " + std::to_string(journal_.results.size()) +
                               " measurements are kept in " + o_.journal +
                               "; run the same command again to resume (no profile written)");
    }
    writeProfile();
  }

private:
  // Starts workers until one finishes; a hung one is killed, a dead one
  // replaced; the candidate each was measuring is marked failed.
  void supervise() {
    int restarts = 0;
    tty_ = isatty(2);
    while (true) {
      pid_t pid = spawnWorker();
      Key current{-2, -2, 0};
      double currentSince = 0;
      size_t offset = fileSize();
      offset_ = offset;
      int status = 0;
      bool done = false, killed = false;
      std::string killReason;
      while (!done) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        readNewLines(current, currentSince);
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
          readNewLines(current, currentSince);
          done = true;
          break;
        }
        double now = nowEpoch();
        if (gInterrupted) {
          kill(pid, SIGTERM);
          waitpid(pid, &status, 0);
          return;
        }
        if (current.p >= -1 && now - currentSince > o_.timeout_s) {
          killReason = "timed out after " + std::to_string(int(o_.timeout_s)) + " s (the tuning process was restarted)";
          kill(pid, SIGKILL);
          waitpid(pid, &status, 0);
          killed = true;
          done = true;
        } else if (current.p < -1 && now > deadline_ + o_.timeout_s) {
          kill(pid, SIGKILL); // past the budget and idle: finish with what was measured
          waitpid(pid, &status, 0);
          return;
        }
        draw(false);
      }
      bool clean = !killed && WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (clean)
        break;
      std::string why = killed ? killReason
                        : WIFSIGNALED(status)
                            ? "the tuning process died (signal " + std::to_string(WTERMSIG(status)) + ")"
                        : WEXITSTATUS(status) == 3 ? "the device was lost (VK_ERROR_DEVICE_LOST)"
                                                   : "the tuning process failed (exit " +
                                                         std::to_string(WEXITSTATUS(status)) + ")";
      if (current.p >= -1) {
        Measurement m;
        m.status = "failed";
        m.reason = why;
        Journal::appendLine(o_.journal, Journal::resultLine(current, m));
        report(current, m);
        journal_.results[current] = m;
      } else if (!killed && WIFEXITED(status) && WEXITSTATUS(status) != 3) {
        clearLine();
        throw std::runtime_error("the tuning process stopped outside a measurement (" + why +
                                 "; its error is above)");
      }
      if (++restarts > 50)
        throw std::runtime_error("tuning failed 50 times in a row on this device; see the errors above");
      if (nowEpoch() >= deadline_)
        break;
    }
    draw(true);
  }

  pid_t spawnWorker() {
    std::string exe = o_.exe.empty() ? "/proc/self/exe" : o_.exe;
    char deadline[64];
    std::snprintf(deadline, sizeof deadline, "%.3f", deadline_);
    std::vector<std::string> args = {exe,       "tune-worker", o_.ttune, "--journal", o_.journal, "--device",
                                     std::to_string(o_.device), "--deadline", deadline, "--repeats",
                                     std::to_string(o_.repeats), "--cold-cache-bytes",
                                     std::to_string(o_.cold_cache_bytes)};
    for (const std::string &f : o_.families)
      args.push_back("--families"), args.push_back(f);
    std::vector<char *> argv;
    for (std::string &a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv.data(), environ);
    if (rc != 0)
      throw std::runtime_error("cannot start the tuning process " + exe + ": " + std::strerror(rc));
    return pid;
  }

  size_t fileSize() {
    std::ifstream in(o_.journal, std::ios::binary | std::ios::ate);
    return in ? size_t(in.tellg()) : 0;
  }

  void readNewLines(Key &current, double &since) {
    std::ifstream in(o_.journal, std::ios::binary);
    if (!in)
      return;
    in.seekg(std::streamoff(offset_));
    std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t pos = 0;
    while (true) {
      size_t nl = chunk.find('\n', pos);
      if (nl == std::string::npos)
        break;
      std::string line = chunk.substr(pos, nl - pos);
      pos = nl + 1;
      json j;
      try {
        j = json::parse(line);
      } catch (const json::exception &) {
        continue;
      }
      Key k{j.value("p", -2), j.value("c", -2), j.value("round", 0)};
      std::string type = j.value("type", "");
      if (type == "start") {
        current = k;
        since = nowEpoch();
      } else if (type == "result") {
        Measurement m = Journal::measurementOf(j);
        journal_.results[k] = m;
        report(k, m);
        current = {-2, -2, 0};
      }
    }
    offset_ += pos;
  }

  std::string describe(const Key &k) const {
    const TuneProblem &p = t_.problems[size_t(k.p)];
    std::string what = k.c < 0 ? "reference " + p.reference.config.label()
                               : p.candidates[size_t(k.c)].config.label();
    return std::string(ruleFamilyName(p.shape.family)) + " " + p.summary + " (" + p.dtype + "), " + what;
  }

  void report(const Key &k, const Measurement &m) {
    if (m.status == "ok")
      tally_.measured++;
    else if (m.status == "wrong")
      tally_.rejected++;
    else if (m.status == "unsupported")
      tally_.unsupported++;
    else
      tally_.failed++;
    if (m.status == "wrong" || m.status == "failed") {
      clearLine();
      std::fprintf(stderr, "%s: %s: %s\n", m.status == "wrong" ? "rejected" : "failed", describe(k).c_str(),
                   m.reason.c_str());
      draw(true);
    }
  }

  void clearLine() {
    if (tty_ && drawn_)
      std::fprintf(stderr, "\r%*s\r", 110, "");
  }

  // Estimated speed-up of the step's kernels over the rules so far: each
  // measured problem at its best, weighted by occurrences.
  double speedup(size_t *doneProblems = nullptr) const {
    double before = 0, after = 0;
    size_t done = 0;
    for (size_t p : selected_) {
      Outcome o = outcomeOf(t_, journal_, p);
      if (!o.baseline || o.baseline->status != "ok")
        continue;
      done++;
      double w = double(t_.problems[p].count);
      before += w * o.baseline_us;
      after += w * (o.winner >= 0 ? std::min(o.winner_us, o.baseline_us) : o.baseline_us);
    }
    if (doneProblems)
      *doneProblems = done;
    return after > 0 ? before / after : 1.0;
  }

  void draw(bool force) {
    double now = nowEpoch();
    if (!force && now - lastDraw_ < (tty_ ? 0.25 : 15.0))
      return;
    lastDraw_ = now;
    size_t done = 0;
    double s = speedup(&done);
    double elapsed = now - start_;
    const int width = 24;
    int filled = int(width * std::min(1.0, elapsed / std::max(o_.budget_s, 1e-9)));
    std::string bar(size_t(filled), '=');
    if (filled < width)
      bar += '>' + std::string(size_t(width - filled - 1), ' ');
    char line[256];
    std::snprintf(line, sizeof line,
                  "tune [%s] %s/%s | %zu/%zu problems | %zu measured, %zu rejected, %zu failed | best speed-up %.2fx",
                  bar.c_str(), train::formatDuration(elapsed).c_str(), train::formatDuration(o_.budget_s).c_str(),
                  done, selected_.size(), tally_.measured, tally_.rejected, tally_.failed, s);
    if (tty_)
      std::fprintf(stderr, "\r%s   ", line);
    else
      std::fprintf(stderr, "%s\n", line);
    drawn_ = true;
    std::fflush(stderr);
  }

  void writeProfile();

  const TuneOptions &o_;
  TuningPlan t_;
  std::string digest_;
  DeviceProfile base_;
  std::unique_ptr<DeviceProfile> existing_;
  vk::DeviceInfo info_;
  DeviceIdentity id_;
  std::vector<size_t> selected_;
  Journal journal_;
  Tally tally_;
  size_t offset_ = 0;
  double start_ = 0, deadline_ = 0, lastDraw_ = 0;
  bool tty_ = false, drawn_ = false;
};

std::string today() {
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::gmtime(&now));
  return buf;
}

std::string fmtUs(double us) {
  char buf[32];
  if (us >= 1000)
    std::snprintf(buf, sizeof buf, "%.2f ms", us / 1000);
  else
    std::snprintf(buf, sizeof buf, "%.1f us", us);
  return buf;
}

void Supervisor::writeProfile() {
  DeviceProfile out = base_;
  if (existing_) { // entries of other models tuned before on this device stay
    std::set<std::string> keys;
    for (const TuneProblem &p : t_.problems)
      keys.insert(p.key);
    for (const ExactEntry &e : existing_->exact)
      if (!keys.count(e.key) && !out.findExact(e.key)) {
        out.exact.push_back(e);
        out.indexExact();
      }
  }
  out.name = o_.name.empty() ? base_.name : o_.name;
  out.match = {};
  out.match.vendor_id = id_.vendor_id;
  out.match.device_id = id_.device_id;
  out.match.type = id_.type;
  out.match.name = id_.name;
  out.match.driver = id_.driver;
  out.match.driver_version = id_.driver_version;
  // The buffer and memory limits are this device's (the base profile's are
  // its vendor's minimum: 128 MiB buffers split a vocabulary table the
  // H200, with 4 GiB, binds whole).
  if (info_.maxStorageBufferRange)
    out.max_buffer_bytes = int64_t(info_.maxStorageBufferRange);
  if (info_.maxMemoryAllocationSize)
    out.max_allocation_bytes = int64_t(info_.maxMemoryAllocationSize);
  if (info_.deviceLocalHeap)
    out.memory_heap_bytes = int64_t(info_.deviceLocalHeap);
  out.copy_queue = info_.copyQueue;

  struct FamilyStats {
    size_t problems = 0, tuned = 0;
    double before = 0, after = 0;
    size_t measured = 0; // problems whose rule and alternatives were timed
    double topWeight = -1;
    std::string topChoice, topRule;
  };
  std::map<std::string, FamilyStats> families;
  // Workgroup-size votes of the tuned problems per rule family (the rules'
  // fallback for shapes the profile does not list).
  std::map<std::string, std::map<int64_t, double>> votes;
  size_t entries = 0, wrongRules = 0;
  double before = 0, after = 0;
  for (size_t p : selected_) {
    const TuneProblem &tp = t_.problems[p];
    Outcome oc = outcomeOf(t_, journal_, p);
    FamilyStats &fs = families[ruleFamilyName(tp.shape.family)];
    fs.problems++;
    if (oc.baseline && (oc.tried > 0 || tp.candidates.size() == 1))
      fs.measured++;
    if (oc.baseline && oc.baseline->status == "wrong")
      wrongRules++;
    if (oc.winner < 0 || oc.tried == 0)
      continue;
    const TuneCandidate &win = tp.candidates[size_t(oc.winner)];
    double ruleUs = oc.baseline_us;
    ExactEntry e;
    e.key = tp.key;
    e.config = win.config;
    e.count = tp.count;
    e.us = oc.winner_us;
    e.rule_us = ruleUs;
    e.rule = tp.candidates[size_t(tp.rule)].config.label();
    bool replaced = false;
    for (ExactEntry &x : out.exact)
      if (x.key == e.key)
        x = e, replaced = true;
    if (!replaced)
      out.exact.push_back(e);
    out.indexExact();
    entries++;
    fs.tuned++;
    double w = double(tp.count);
    if (ruleUs > 0) {
      fs.before += w * ruleUs;
      fs.after += w * std::min(ruleUs, oc.winner_us);
      before += w * ruleUs;
      after += w * std::min(ruleUs, oc.winner_us);
    }
    if (w * oc.winner_us > fs.topWeight) {
      fs.topWeight = w * oc.winner_us;
      fs.topChoice = win.config.label() + " for " + tp.summary;
      fs.topRule = e.rule;
    }
    if (win.config.kind != ConfigKind::Matmul && !(win.config.kind == ConfigKind::Reduction && win.config.reduction.serial()))
      votes[ruleFamilyName(tp.shape.family)][win.config.threads()] += w * oc.winner_us;
  }
  // Rules: the workgroup size that most of a family's time chose, and only
  // where every problem of the family was measured. A rule serves the shapes
  // without an exact entry: with a partial measurement those are this
  // model's own untimed kernels, which keep the base profile's (known) rule
  // rather than an extrapolated one (docs/autotune.md "Rules").
  std::vector<std::string> keptRules;
  auto vote = [&](const char *family, int64_t &wg, bool pow2) {
    auto it = votes.find(family);
    if (it == votes.end())
      return;
    if (auto f = families.find(family); f != families.end() && f->second.measured < f->second.problems) {
      keptRules.push_back(std::string(family) + " (" + std::to_string(f->second.measured) + " of " +
                          std::to_string(f->second.problems) + " problems measured)");
      return;
    }
    double total = 0, bestW = 0;
    int64_t best = 0;
    for (auto &[size, w] : it->second) {
      total += w;
      if (w > bestW)
        bestW = w, best = size;
    }
    if (best > 0 && bestW > 0.5 * total && (!pow2 || (best & (best - 1)) == 0))
      wg = best;
  };
  vote("elementwise", out.elementwise_workgroup, false);
  vote("copy", out.copy_workgroup, false);
  vote("adamw", out.adamw_workgroup, false);
  vote("cross_entropy", out.cross_entropy_workgroup, true);
  vote("reduce", out.reduce_workgroup, true);
  vote("softmax", out.softmax_workgroup, true);

  double elapsed = nowEpoch() - start_;
  double est = after > 0 ? before / after : 1.0;
  char desc[512];
  std::snprintf(desc, sizeof desc,
                "Tuned by tessera tune on %s (%s) on %s from the rules of profile '%s': %zu exact-shape entries; "
                "the measured kernels of %s run an estimated %.2fx faster than with the rules.",
                id_.name.c_str(), id_.driver.c_str(), today().c_str(), base_.name.c_str(), entries,
                t_.model_file.c_str(), est);
  out.description = desc;
  json prov = {{"tool", "tessera tune"},
               {"version", tesseraVersion()},
               {"date", today()},
               {"device", id_.name},
               {"driver", id_.driver},
               {"tuning_plan", o_.ttune},
               {"model", t_.model_file},
               {"base_profile", base_.name},
               {"budget_s", o_.budget_s},
               {"cold_cache_bytes", o_.cold_cache_bytes < 0 ? int64_t(coldCacheBytes(info_)) : o_.cold_cache_bytes},
               {"elapsed_s", std::round(elapsed * 10) / 10},
               {"problems", selected_.size()},
               {"measured", tally_.measured},
               {"rejected", tally_.rejected},
               {"failed", tally_.failed},
               {"estimated_speedup", std::round(est * 1000) / 1000}};
  if (existing_ && !existing_->tuning.empty())
    prov["previous"] = json::parse(existing_->tuning);
  out.tuning = prov.dump();
  // Round trip through the reader: the file written is one the compiler accepts.
  std::string text = profileToJson(out);
  parseProfile(text, o_.out);
  util::writeFileAtomic(o_.out, text);

  clearLine();
  std::printf("\nwrote %s: profile '%s' for %s, %zu exact-shape entries (tuned in %s of %s)\n", o_.out.c_str(),
              out.name.c_str(), describeIdentity(id_).c_str(), entries, train::formatDuration(elapsed).c_str(),
              train::formatDuration(o_.budget_s).c_str());
  std::printf("%zu candidates measured, %zu rejected (output differs from the reference kernel), %zu failed, %zu "
              "unsupported by the device\n",
              tally_.measured, tally_.rejected, tally_.failed, tally_.unsupported);
  if (wrongRules)
    std::printf("warning: the rules' config of %zu problems gives wrong results on this device; the profile "
                "replaces them\n",
                wrongRules);
  std::printf("%-14s %9s %10s  %s\n", "family", "tuned", "speed-up", "largest kernel: chosen (rules)");
  for (auto &[name, fs] : families)
    std::printf("%-14s %4zu/%-4zu %9.2fx  %s\n", name.c_str(), fs.tuned, fs.problems,
                fs.after > 0 ? fs.before / fs.after : 1.0,
                fs.topChoice.empty() ? "-" : (fs.topChoice + " (" + fs.topRule + ")").c_str());
  if (!keptRules.empty()) {
    std::printf("rules kept from profile '%s' where not every problem was measured:", base_.name.c_str());
    for (size_t i = 0; i < keptRules.size(); ++i)
      std::printf("%s %s", i ? "," : "", keptRules[i].c_str());
    std::printf("\n");
  }
  std::printf("estimated speed-up of the tuned kernels over the rules: %.2fx (kernel times x occurrences)\n", est);
  std::fflush(stdout);
}

} // namespace

void runTuning(const TuneOptions &o) {
  TuneOptions opts = o;
  if (opts.out.empty())
    throw std::runtime_error("--out PROFILE.json is required");
  if (opts.journal.empty())
    opts.journal = opts.out + ".journal";
  if (!(opts.budget_s > 0))
    throw std::runtime_error("--budget must be positive");
  Supervisor(opts).run();
}

void listTuningPlan(const TuneOptions &o) {
  TuningPlan t = readTuningPlanFile(o.ttune);
  DeviceProfile base = parseProfile(t.profile_json, o.ttune + ": profile");
  std::printf("tuning plan %s: model %s, compiled by tessera %s with profile '%s', %zu problems\n", o.ttune.c_str(),
              t.model_file.c_str(), t.compiler_version.c_str(), base.name.c_str(), t.problems.size());
  for (size_t p = 0; p < t.problems.size(); ++p) {
    const TuneProblem &tp = t.problems[p];
    if (!familySelected(o, tp))
      continue;
    std::printf("problem %zu: %s x%lld, %s %s\n  key: %s\n  reference: %s\n", p, ruleFamilyName(tp.shape.family),
                (long long)tp.count, tp.summary.c_str(), tp.dtype.c_str(), tp.key.c_str(),
                tp.reference.config.label().c_str());
    for (size_t c = 0; c < tp.candidates.size(); ++c)
      std::printf("  c%zu %s: %s\n", c, tp.candidates[c].origin.c_str(), tp.candidates[c].config.label().c_str());
  }
}

int runTuneWorker(const TuneOptions &o, double deadline) {
  try {
    return Worker(o, deadline).run();
  } catch (const Worker::DeviceLost &) {
    return 3;
  }
}

} // namespace tessera::autotune
