#include "runtime/tokenizer/PostProcessor.h"

#include <nlohmann/json.hpp>

#include <map>
#include <stdexcept>

namespace tessera::text {

namespace {

using json = nlohmann::json;

class Template : public PostProcessor {
public:
  Template(const json &j, const std::string &where) {
    std::map<std::string, std::vector<int32_t>> special;
    if (j.contains("special_tokens"))
      for (auto it = j.at("special_tokens").begin(); it != j.at("special_tokens").end(); ++it)
        special[it.key()] = it.value().at("ids").get<std::vector<int32_t>>();
    for (const json &item : j.at("single")) {
      if (item.contains("Sequence")) {
        items_.push_back({true, {}});
      } else if (item.contains("SpecialToken")) {
        std::string id = item.at("SpecialToken").at("id").get<std::string>();
        auto it = special.find(id);
        if (it == special.end())
          throw std::runtime_error(where + ": TemplateProcessing uses '" + id + "', which special_tokens does not define");
        items_.push_back({false, it->second});
      } else {
        throw std::runtime_error(where + ": TemplateProcessing item is neither Sequence nor SpecialToken");
      }
    }
  }
  void apply(std::vector<Token> &tokens) const override {
    std::vector<Token> out;
    for (const Item &item : items_) {
      if (item.sequence) out.insert(out.end(), tokens.begin(), tokens.end());
      else
        for (int32_t id : item.ids) out.push_back({id, {}});
    }
    tokens = std::move(out);
  }

private:
  struct Item {
    bool sequence;
    std::vector<int32_t> ids;
  };
  std::vector<Item> items_;
};

// BertProcessing / RobertaProcessing: [cls] A [sep].
class ClsSep : public PostProcessor {
public:
  explicit ClsSep(const json &j) : cls_(j.at("cls").at(1).get<int32_t>()), sep_(j.at("sep").at(1).get<int32_t>()) {}
  void apply(std::vector<Token> &tokens) const override {
    tokens.insert(tokens.begin(), Token{cls_, {}});
    tokens.push_back({sep_, {}});
  }

private:
  int32_t cls_, sep_;
};

class Sequence : public PostProcessor {
public:
  explicit Sequence(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  void apply(std::vector<Token> &tokens) const override {
    for (const auto &s : steps_) s->apply(tokens);
  }

private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

} // namespace

std::unique_ptr<PostProcessor> makePostProcessor(const json &j, const std::string &where) {
  if (j.is_null()) return nullptr;
  const std::string type = j.value("type", "");
  const std::string at = where + " (post_processor " + type + ")";
  if (type == "ByteLevel") return nullptr; // only trims offsets; the ids are unchanged
  if (type == "TemplateProcessing") return std::make_unique<Template>(j, at);
  if (type == "BertProcessing" || type == "RobertaProcessing") return std::make_unique<ClsSep>(j);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (const json &s : j.at("processors"))
      if (auto p = makePostProcessor(s, where)) steps.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(steps));
  }
  throw std::runtime_error(where + ": unsupported post_processor type '" + type +
                           "' (supported: TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing, Sequence)");
}

} // namespace tessera::text
