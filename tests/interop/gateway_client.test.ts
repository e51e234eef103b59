// Smithers' published Gateway client (@smithers-orchestrator/gateway-client
// 0.32.0, unmodified, fetched by scripts/install-deps) against our Gateway.
// Started by tests/e2e/interop_test.py, which runs the Gateway with the
// workflows `hello` and `gate` and passes, in the environment:
//   SMITHERS_INTEROP_CLIENT  the client's src/ folder
//   SMITHERS_URL             the Gateway's http://127.0.0.1:PORT
//   SMITHERS_TOKEN           scopes run:admin, approval:submit, signal:submit, cron:write (user ops)
//   SMITHERS_READ_TOKEN      scope run:read only
import { expect, test } from "bun:test";

const clientDir = process.env.SMITHERS_INTEROP_CLIENT;
const url = process.env.SMITHERS_URL;
if (!clientDir || !url) throw new Error("run by tests/e2e/interop_test.py");
const { SmithersGatewayClient } = await import(`${clientDir}/SmithersGatewayClient.ts`);

const admin = new SmithersGatewayClient({ baseUrl: url, token: process.env.SMITHERS_TOKEN });
const reader = new SmithersGatewayClient({ baseUrl: url, token: process.env.SMITHERS_READ_TOKEN });

type Frame = { event: string; seq: number; stateVersion: number; payload?: any };

// The run events of a stream up to the run's run.completed event. As with
// Smithers' own Gateway, the socket stays open after it (a connection may
// hold other streams): the consumer stops there.
async function runEvents(frames: AsyncIterable<Frame>) {
  const events: any[] = [];
  for await (const f of frames) {
    expect(typeof f.stateVersion).toBe("number");
    if (f.event !== "run.event") continue;
    events.push(f.payload);
    if (f.payload.event === "run.completed") break;
  }
  return events;
}

function expectGapless(events: any[], from: number) {
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => from + i));
}

// The error a call fails with (the test fails if it succeeds).
async function failure(call: Promise<unknown>): Promise<any> {
  try {
    await call;
  } catch (e) {
    return e;
  }
  throw new Error("the call succeeded");
}

// A TCP proxy in front of the Gateway whose connections the test can cut:
// the client sees a real socket drop.
function proxy(target: string) {
  const { hostname, port } = new URL(target);
  const open = new Set<any>();
  const server = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      async open(client: any) {
        open.add(client);
        client.data = { pending: [] as Uint8Array[] };
        client.data.upstream = await Bun.connect({
          hostname,
          port: Number(port),
          socket: {
            data(_s: any, chunk: Uint8Array) {
              client.write(chunk);
            },
            close() {
              client.end();
            },
          },
        });
        for (const chunk of client.data.pending) client.data.upstream.write(chunk);
      },
      data(client: any, chunk: Uint8Array) {
        if (client.data.upstream) client.data.upstream.write(chunk);
        else client.data.pending.push(chunk);
      },
      close(client: any) {
        open.delete(client);
        client.data.upstream?.end();
      },
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    cut() {
      const n = open.size;
      for (const c of open) c.end();
      return n;
    },
    stop() {
      server.stop(true);
    },
  };
}

test("listWorkflows returns GatewayWorkflowSummary rows", async () => {
  const rows = await admin.listWorkflows();
  expect(rows.map((r: any) => r.key).sort()).toEqual(["gate", "hello"]);
  for (const r of rows) expect(r).toMatchObject({ hasUi: false, uiPath: null, system: false });
  expect(await admin.listWorkflows({ filter: { hasUi: true } })).toEqual([]);
});

test("a run launched, read and streamed from seq 1 to its run.completed", async () => {
  const launched = await admin.launchRun({ workflow: "hello", input: { name: "bun" } });
  expect(launched).toEqual({ runId: expect.any(String), workflow: "hello", system: false });
  const { runId } = launched;

  const events = await runEvents(admin.streamRunEventsResilient({ runId, afterSeq: 0 }));
  expectGapless(events, 1);
  const names = events.map((e) => e.event);
  expect(names).toContain("node.started");
  expect(names).toContain("node.finished");
  expect(names.filter((n) => n === "run.completed")).toEqual(["run.completed"]);
  const last = events[events.length - 1];
  expect(last).toMatchObject({ runId, event: "run.completed", type: "RunFinished" });
  expect(last.payload).toMatchObject({ runId, status: "finished" });
  // Events Smithers has no name for keep ours.
  expect(names).toContain("FrameCommitted");

  // Resumed after a seq: exactly the events after it.
  const tail = await runEvents(admin.streamRunEventsResilient({ runId, afterSeq: 2 }));
  expect(tail).toEqual(events.slice(2).map((e) => ({ ...e, streamId: expect.any(String) })));

  const run = await admin.getRun({ runId });
  expect(run).toMatchObject({ runId, status: "finished", workflowKey: "hello", system: false });
  const runs = await admin.listRuns({ filter: { workflow: "hello" } });
  expect(Array.isArray(runs)).toBe(true);
  expect(runs.map((r: any) => r.runId)).toContain(runId);
  for (const r of runs) expect(r.system).toBe(false);
  const output = await reader.getNodeOutput({ runId, nodeId: "greet" });
  expect(output).toMatchObject({ status: "produced", row: { message: "Hello, bun" } });
  expect(await reader.rpc("listRunTokenUsage", { runId })).toEqual({ runId, events: [] });
});

test("an approval decided while the client's socket was cut: it reconnects and sees each event once", async () => {
  const { runId } = await admin.launchRun({ workflow: "gate" });
  const front = proxy(url);
  const viaProxy = new SmithersGatewayClient({ baseUrl: front.url, token: process.env.SMITHERS_TOKEN });
  const reconnects: any[] = [];
  const stream = viaProxy
    .streamRunEventsResilient(
      { runId, afterSeq: 0 },
      { backoff: { baseMs: 20, maxMs: 200 }, onReconnect: (e: any) => reconnects.push(e) },
    )
    [Symbol.asyncIterator]();
  const events: any[] = [];
  // Up to the approval's request, then the socket is cut.
  while (!events.some((e) => e.event === "approval.requested")) {
    const next = await stream.next();
    expect(next.done).toBe(false);
    if (next.value.event === "run.event") events.push(next.value.payload);
  }
  expect(front.cut()).toBeGreaterThan(0);

  const approvals = await admin.listApprovals({ filter: { runId } });
  expect(approvals).toEqual([
    expect.objectContaining({
      runId,
      nodeId: "ship",
      iteration: 0,
      workflowKey: "gate",
      requestTitle: "Ship it?",
      requestedAtMs: expect.any(Number),
    }),
  ]);
  const decided = await admin.submitApproval({
    runId,
    nodeId: "ship",
    decision: { approved: true, note: "lgtm" },
  });
  expect(decided).toMatchObject({ runId, nodeId: "ship", iteration: 0, approved: true });

  while (events[events.length - 1].event !== "run.completed") {
    const next = await stream.next();
    expect(next.done).toBe(false);
    if (next.value.event === "run.event") events.push(next.value.payload);
  }
  await stream.return(undefined);
  front.stop();
  viaProxy.close();
  expect(reconnects.length).toBeGreaterThanOrEqual(1);
  expect(reconnects[0]).toMatchObject({ runId, afterSeq: expect.any(Number) });
  expectGapless(events, 1);
  const names = events.map((e) => e.event);
  expect(names).toContain("approval.decided");
  expect(names.filter((n) => n === "run.completed")).toEqual(["run.completed"]);
  expect(events[events.length - 1].payload).toMatchObject({ runId, status: "finished" });
  expect((await admin.getRun({ runId })).status).toBe("finished");
});

test("a launch retried with its idempotencyKey returns the first run", async () => {
  const key = `deploy-${crypto.randomUUID()}`;
  const first = await admin.launchRun({ workflow: "hello", input: { name: "once" }, options: { idempotencyKey: key } });
  const again = await admin.launchRun({ workflow: "hello", input: { name: "once" }, options: { idempotencyKey: key } });
  expect(again).toEqual(first);
  const other = await admin.launchRun({ workflow: "hello", options: { idempotencyKey: `${key}-2` } });
  expect(other.runId).not.toBe(first.runId);
});

test("signal, cancel and resume through the client", async () => {
  const { runId } = await admin.launchRun({ workflow: "gate" });
  const signal = await admin.submitSignal({ runId, signalName: "ci", correlationKey: "build-7", payload: { ok: true } });
  expect(signal).toMatchObject({ runId, signalName: "ci", correlationId: "build-7", seq: expect.any(Number) });
  const cancel = await admin.cancelRun({ runId });
  // The signal wakes the run: when the cancel finds it still running, the
  // run is "cancelling" and completes as cancelled just after; when it has
  // parked again, it is cancelled at once. The events below show the end.
  expect(cancel).toMatchObject({ runId, status: "cancelling" });
  expect(["cancelled", "cancelling"]).toContain(cancel.runStatus);
  const events = await runEvents(admin.streamRunEventsResilient({ runId, afterSeq: 0 }));
  expectGapless(events, 1);
  expect(events[events.length - 1]).toMatchObject({ event: "run.completed", payload: { runId, status: "cancelled" } });
  const finished = await admin.launchRun({ workflow: "hello" });
  await runEvents(admin.streamRunEventsResilient({ runId: finished.runId, afterSeq: 0 }));
  expect(await admin.resumeRun({ runId: finished.runId })).toEqual({ runId: finished.runId, status: "already_terminal" });
});

test("cron methods return the client's row shapes", async () => {
  const created = await admin.cronCreate({ workflow: "hello", pattern: "0 3 * * *", cronId: "nightly" });
  expect(created).toMatchObject({ cronId: "nightly", workflow: "hello", pattern: "0 3 * * *", enabled: true });
  const rows = await admin.cronList({ filter: { workflow: "hello" } });
  expect(rows).toEqual([
    expect.objectContaining({
      cronId: "nightly",
      pattern: "0 3 * * *",
      workflow: "hello",
      workflowPath: expect.stringMatching(/hello\.lua$/),
      enabled: true,
      nextRunAtMs: expect.any(Number),
    }),
  ]);
  const fired = await admin.cronRun({ cronId: "nightly" });
  expect(fired).toMatchObject({ runId: expect.any(String), workflow: "hello" });
  await admin.cronDelete({ cronId: "nightly" });
  expect(await admin.cronList()).toEqual([]);
});

test("errors the client can read: code, status and required scope", async () => {
  const forbidden = await failure(reader.launchRun({ workflow: "hello" }));
  expect(forbidden).toMatchObject({ name: "GatewayRpcError", code: "Forbidden", requiredScope: "run:write" });
  const missing = await failure(reader.getRun({ runId: "no-such-run" }));
  expect(missing).toMatchObject({ name: "GatewayRpcError", code: "RunNotFound" });
  // A method of the client's map that we do not serve.
  const unserved = await failure(admin.pauseRun({ runId: "no-such-run" }));
  expect(unserved).toMatchObject({ name: "GatewayRpcError", code: "METHOD_NOT_FOUND" });
  // The same over the WebSocket.
  const connection = await admin.connect();
  const ws = await failure(connection.request("hijackRun", { runId: "x" }));
  expect(ws).toMatchObject({ name: "GatewayRpcError", code: "METHOD_NOT_FOUND" });
  connection.close();
});
