// Output schemas in Lua (internal to src/script): smithers.schema's builders
// (z.object, z.string, ...; docs/schemas.md), schema values (full userdata
// holding a Json) and smithers.outputs, whose entries ({ __output = name })
// name an output in tasks and ctx lookups.
#ifndef SMITHERS_SCRIPT_LUA_SCHEMA_H_
#define SMITHERS_SCRIPT_LUA_SCHEMA_H_

#include <lua.hpp>
#include <string_view>

#include "smithers/json.h"

namespace smithers::script {

// Registers the schema metatable and the registry table of declared outputs
// (kOutputsKey) in a new state.
void SetUpSchemas(lua_State* ls);

// Pushes the smithers.schema table of builders.
void PushSchemaLibrary(lua_State* ls);

// The schema at `idx`, or nullptr when it is not one.
Json* ToSchema(lua_State* ls, int idx);

// smithers.outputs { name = schema, ... } -> { name = { __output = name } }
int Outputs(lua_State* ls);

// The output name from an outputs entry ({__output=...}) or a plain string.
// The view stays valid while the value at `idx` is on the stack (the entry
// holds the string).
std::string_view OutputName(lua_State* ls, int idx);

}  // namespace smithers::script

#endif  // SMITHERS_SCRIPT_LUA_SCHEMA_H_
