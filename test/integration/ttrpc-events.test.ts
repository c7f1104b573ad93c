/**
 * Acceptance: cryo's ttrpc client against a real containerd. A TaskExit event forwarded through
 * containerd.services.events.ttrpc.v1.Events/Forward on containerd's ttrpc socket comes out of
 * `ctr events` with its timestamp, namespace, topic and payload intact.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, CryoError } from "../../src/errors.ts";
import { TaskExitSchema } from "../../src/gen/containerd/events/task_pb.ts";
import { Events } from "../../src/gen/containerd/services/events/ttrpc/v1/events_pb.ts";
import { connect, createClient, type Client } from "../../src/ttrpc/index.ts";
import { type PrivateContainerd, parseCtrEvent, startCtrEvents, startPrivateContainerd, uniqueId, waitFor } from "../harness/index.ts";

/** containerd resolves event payloads by the bare message name (typeurl), not type.googleapis.com/… */
function taskExit(init: { containerId: string; id: string; pid: number; exitStatus: number; exitedAt: Date }) {
  const { exitedAt, ...rest } = init;
  return create(AnySchema, {
    typeUrl: "containerd.events.TaskExit",
    value: toBinary(TaskExitSchema, create(TaskExitSchema, { ...rest, exitedAt: timestampFromDate(exitedAt) })),
  });
}

describe("ttrpc against a real containerd", () => {
  let pc: PrivateContainerd;
  let client: Client;
  const namespace = uniqueId("ttrpc-ev");

  beforeAll(async () => {
    pc = await startPrivateContainerd({ namespace });
    client = await connect(pc.ttrpcAddress, { namespace });
  });
  afterAll(async () => {
    client?.close();
    await pc?.stop();
  });

  test("a TaskExit forwarded over ttrpc arrives in `ctr events` with namespace, topic and payload intact", async () => {
    const events = createClient(Events, client);
    const ctr = startCtrEvents(pc.address, namespace);
    try {
      // ctr prints nothing until it is subscribed and an event arrives: forward warm-up events until one shows.
      let warm = 0;
      await waitFor(
        async () => {
          if (ctr.lines.some((l) => l.includes("warmup-"))) return true;
          await events.forward({
            envelope: {
              timestamp: timestampFromDate(new Date()),
              namespace,
              topic: "/tasks/exit",
              event: taskExit({ containerId: `warmup-${warm++}`, id: "warmup", pid: 1, exitStatus: 0, exitedAt: new Date() }),
            },
          });
          return false;
        },
        { what: "ctr events to show a warm-up event", timeoutMs: 30_000, intervalMs: 100 },
      );

      const containerId = uniqueId("c");
      const stamp = new Date("2024-01-02T03:04:05Z");
      const exitedAt = new Date("2024-01-02T03:04:06.5Z");
      const res = await events.forward(
        {
          envelope: {
            timestamp: timestampFromDate(stamp),
            namespace,
            topic: "/tasks/exit",
            event: taskExit({ containerId, id: containerId, pid: 4242, exitStatus: 137, exitedAt }),
          },
        },
        { timeoutMs: 10_000 },
      );
      expect(res.$typeName).toBe("google.protobuf.Empty");

      const line = await waitFor(() => ctr.lines.find((l) => l.includes(containerId)), {
        what: `ctr events to print ${containerId}`,
        timeoutMs: 10_000,
      });
      // ctr prints: <Go time> <namespace> <topic> <event as JSON>
      console.log(`ctr events: ${line}`);
      const parsed = parseCtrEvent(line);
      expect(parsed).toBeDefined();
      const { time, namespace: ns, topic, event } = parsed!;
      expect(time).toBe("2024-01-02 03:04:05 +0000 UTC");
      expect(ns).toBe(namespace);
      expect(topic).toBe("/tasks/exit");
      expect(event.container_id).toBe(containerId);
      expect(event.id).toBe(containerId);
      expect(event.pid).toBe(4242);
      expect(event.exit_status).toBe(137);
      expect(Date.parse(event.exited_at as string)).toBe(exitedAt.getTime());
    } finally {
      await ctr.stop();
    }
  });

  test("containerd's own errors come back as CryoErrors with its codes", async () => {
    const events = createClient(Events, client);
    let err: unknown;
    try {
      await events.forward({ envelope: { namespace, topic: "no-leading-slash", event: taskExit({ containerId: "x", id: "x", pid: 1, exitStatus: 0, exitedAt: new Date() }) } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CryoError);
    expect((err as CryoError).code).toBe(Code.INVALID_ARGUMENT);

    err = undefined;
    try {
      await client.callRaw("containerd.services.events.ttrpc.v1.Events", "NoSuchMethod", new Uint8Array(0));
    } catch (e) {
      err = e;
    }
    expect((err as CryoError).code).toBe(Code.UNIMPLEMENTED);
    // The connection survives both.
    expect(client.closed).toBe(false);
  });
});
