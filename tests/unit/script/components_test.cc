// The component table (script/components.h): each row is a constructor in the
// `smithers` table, the props check and the conversion read it.
#include "script/components.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "script/lua_workflow.h"

namespace smithers::script {
namespace {

Result<Node> RenderSource(const std::string& source) {
  auto module = LoadWorkflowModuleSource("/nonexistent/components.lua", source);
  if (!module.ok()) return module.status();
  Json input = Json::object();
  Ctx::OutputMap outputs;
  Ctx ctx("r", &input, &outputs, 0);
  return (*module)->definition().render(ctx);
}

TEST(ComponentsTest, RowsHaveUniqueNamesAndAReader) {
  std::set<std::string_view> names;
  for (const ComponentRow& row : ComponentRows()) {
    EXPECT_TRUE(names.insert(row.name).second) << row.name;
    if (!row.alias.empty()) {
      EXPECT_TRUE(names.insert(row.alias).second) << row.alias;
    }
    EXPECT_NE(row.to_node, nullptr) << row.name;
    EXPECT_EQ(FindComponent(row.name), &row);
  }
  EXPECT_EQ(FindComponent("Ralph"), nullptr);  // an alias is not a kind
  EXPECT_EQ(FindComponent("Agent"), nullptr);  // an agent is not a component
}

// Every row (and alias) is a constructor of `smithers` that tags its table
// with the row's name; the props check knows every row.
TEST(ComponentsTest, EveryRowIsRegisteredInTheSmithersTable) {
  std::string src = "local smithers = require('smithers')\n";
  for (const ComponentRow& row : ComponentRows()) {
    for (std::string_view alias : {row.name, row.alias}) {
      if (alias.empty()) continue;
      std::string name(alias);
      src += "assert(type(rawget(smithers, '" + name + "')) == 'function', 'no " + name + "')\n";
      src += "assert(smithers." + name + " { id = 'x' }.__kind == '" + std::string(row.name) +
             "', '" + name + " tags its table')\n";
    }
  }
  src += "return smithers(function(ctx) return smithers.Sequence {} end)\n";
  auto module = LoadWorkflowModuleSource("/nonexistent/components.lua", src);
  ASSERT_TRUE(module.ok()) << module.status().message();
}

TEST(ComponentsTest, ANonComponentNamesEveryComponent) {
  auto node = RenderSource(
      "local smithers = require('smithers')\n"
      "return smithers(function(ctx) return 42 end)\n");
  ASSERT_FALSE(node.ok());
  std::string names;
  for (const ComponentRow& row : ComponentRows()) {
    names += (names.empty() ? "" : ", ") + std::string(row.name);
  }
  EXPECT_NE(node.status().message().find("must be a component (" + names + "), got number"),
            std::string::npos)
      << node.status().message();
}

TEST(ComponentsTest, AnUnknownPropNamesTheComponentsThatTakeIt) {
  auto node = RenderSource(
      "local smithers = require('smithers')\n"
      "return smithers(function(ctx) return smithers.Sequence { maxIterations = 3 } end)\n");
  ASSERT_FALSE(node.ok());
  EXPECT_NE(node.status().message().find(
                "unknown prop \"maxIterations\" (a prop of Loop, not of Sequence)"),
            std::string::npos)
      << node.status().message();
}

}  // namespace
}  // namespace smithers::script
