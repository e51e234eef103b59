// The SQL stores' statements: one prepared statement per StatementId, its text
// in kStatements (statements.cc), prepared once per connection.
#ifndef SMITHERS_STORE_SQL_STATEMENTS_H_
#define SMITHERS_STORE_SQL_STATEMENTS_H_

namespace smithers::store {

enum StatementId : int {
  kUpsertRun,
  kUpsertNode,
  kUpsertAttempt,
  kPutOutput,
  kPutFrame,
  kUpsertLoop,
  kAppendEvent,
  kPutCache,
  kGetRun,
  kListRuns,
  kListRunsWithStatus,
  kListNodes,
  kListAttempts,
  kListOutputs,
  kListLoops,
  kListFrames,
  kLastFrame,
  kListEvents,
  kGetCache,
  kRunExists,
  kClaimRun,
  kHeartbeat,
  kRequestCancel,
  kClearCancel,
  kObjectType,
  kRequestApproval,
  kRenewApproval,
  kConsumeSignal,
  kListApprovals,
  kGetApproval,
  kDecideApproval,
  kDueApprovals,
  kEscalateApproval,
  kNextSignalSeq,
  kInsertSignal,
  kListSignals,
  kPutSandbox,
  kPatchSandbox,
  kListSandboxes,
  kListRunsWaiting,
  kSignalState,
  kPutToken,
  kFindToken,
  kListTokens,
  kRevokeToken,
  kPutCron,
  kListCron,
  kDeleteCron,
  kClaimCronFire,
  kPutModule,
  kGetModule,
  kPutModuleRequire,
  kGetModuleRequires,
  kClaimLaunchKey,
  kGetLaunchKey,
  kReleaseLaunchKey,
  kDataVersion,
  kCountNodes,
  kCountRunsByStatus,
  kDeleteRun,
  kDeleteRunLaunchKeys,
  kAddMaintenance,
  kListMaintenance,
  kAuditLast,
  kAuditChainHead,
  kAuditRunRevision,
  kAuditInsert,
  kListAudit,
  kStatementCount,
};

struct StatementSql {
  StatementId id;
  const char* sql;
  int migration = 1;  // the schema migration that created the tables it uses
};

// The text of every statement, in StatementId order.
extern const StatementSql kStatements[kStatementCount];

}  // namespace smithers::store

#endif  // SMITHERS_STORE_SQL_STATEMENTS_H_
