// Every table a store keeps, with its columns, as both SQL backends define
// them (store/sqlite/migrations.cc, store/postgres/pg_migrations.cc): what
// Store::ExportTable reads and Store::BeginImport writes (smithers db copy).
// A migration that adds a column or a table adds it here too (the copy test
// compares this list with the database's own).
#ifndef SMITHERS_STORE_SQL_TABLES_H_
#define SMITHERS_STORE_SQL_TABLES_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace smithers::store {

enum class ColumnKind {
  kInteger,  // 64-bit
  kText,     // UTF-8 text (JSON included)
  kBytes,    // any bytes (module sources)
};

struct TableColumn {
  std::string_view name;
  ColumnKind kind;
};

struct TableDef {
  std::string_view name;
  std::initializer_list<TableColumn> columns;
  // The primary key: the first `key_columns` columns (a stable order to
  // read and hash the rows in).
  size_t key_columns;
};

// In an order that satisfies every foreign key (runs first).
std::span<const TableDef> StoreTables();

// The table named `name`, or nullptr.
const TableDef* FindStoreTable(std::string_view name);

// "a, b, c" of the table's first `count` columns (all by default).
std::string ColumnList(const TableDef& table, size_t count = SIZE_MAX);

}  // namespace smithers::store

#endif  // SMITHERS_STORE_SQL_TABLES_H_
