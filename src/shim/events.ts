/**
 * Events to containerd: an ordered publisher queue in front of containerd's ttrpc events service
 * (containerd.services.events.ttrpc.v1.Events/Forward on the TTRPC_ADDRESS socket).
 *
 * Events leave in the order they were published. A failed forward is retried after 1 s, 2 s, ...
 * up to MAX_ATTEMPTS (containerd's shim publisher does the same, but requeues behind later events;
 * cryo keeps strict order because containerd's task state follows create/start/exit/delete). The
 * connection is re-dialled on the next attempt after a failure. `drain` waits for the queue with a
 * deadline at shutdown.
 */
import { create, toBinary, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { CryoError } from "../errors.ts";
import { wallClock, type WallTime } from "../sys/clock.ts";
import { Events } from "../gen/containerd/services/events/ttrpc/v1/events_pb.ts";
import { connect, type Client } from "../ttrpc/index.ts";
import { addressPath } from "./grouping.ts";
import type { Logger } from "./logger.ts";

/** Attempts per event before it is dropped. */
export const MAX_ATTEMPTS = 5;

/** Task event topics, as containerd names them. */
export const Topic = {
  create: "/tasks/create",
  start: "/tasks/start",
  exit: "/tasks/exit",
  delete: "/tasks/delete",
  execAdded: "/tasks/exec-added",
  execStarted: "/tasks/exec-started",
  paused: "/tasks/paused",
  resumed: "/tasks/resumed",
  oom: "/tasks/oom",
  checkpointed: "/tasks/checkpointed",
} as const;
/** A task event topic. */
export type Topic = (typeof Topic)[keyof typeof Topic];

/** One event as it travels: containerd's Envelope fields. */
export interface EventEnvelope {
  timestamp: WallTime;
  namespace: string;
  topic: string;
  /** The event message as an Any whose type_url is the bare message name ("containerd.events.TaskExit"). */
  event: Any;
}

/** Sends one envelope to containerd (the real one calls Events/Forward; tests record). */
export interface EventForwarder {
  forward(envelope: EventEnvelope): Promise<void>;
  close(): void;
}

/** Publishes task events in order. */
export interface Publisher {
  /**
   * Queues an event; never throws (failures are retried, then logged and dropped). The promise resolves once
   * containerd has the event (its Forward answered) or it was dropped; it never rejects.
   */
  publish<D extends DescMessage>(namespace: string, topic: Topic, schema: D, event: MessageInitShape<D>): Promise<void>;
  /** Resolves when every queued event has been forwarded or dropped, or when timeoutMs passes. */
  drain(timeoutMs: number): Promise<void>;
  /** Events queued and not yet sent. */
  readonly queued: number;
}

/** Packs a message as containerd's typeurl does: type_url is the message's full name, no prefix. */
export function packEvent<D extends DescMessage>(schema: D, event: MessageInitShape<D>): Any {
  return create(AnySchema, { typeUrl: schema.typeName, value: toBinary(schema, create(schema, event)) });
}

/** Creates the ordered publisher over a forwarder; retryDelayMs(attempt) defaults to attempt seconds. */
export function createPublisher(
  forwarder: EventForwarder,
  log: Logger,
  options: { retryDelayMs?: (attempt: number) => number } = {},
): Publisher {
  const delay = options.retryDelayMs ?? ((attempt: number) => attempt * 1000);
  const queue: { env: EventEnvelope; settle: () => void }[] = [];
  let running: Promise<void> | undefined;

  async function pump(): Promise<void> {
    while (queue.length > 0) {
      const { env, settle } = queue[0]!;
      for (let attempt = 1; ; attempt++) {
        try {
          await forwarder.forward(env);
          break;
        } catch (err) {
          const e = CryoError.from(err);
          if (attempt >= MAX_ATTEMPTS) {
            log.error(`dropping event ${env.topic} after ${attempt} attempts: ${e.message}`);
            break;
          }
          log.warn(`forward event ${env.topic} (attempt ${attempt}): ${e.message}`);
          await Bun.sleep(delay(attempt));
        }
      }
      queue.shift();
      settle();
    }
  }

  function kick(): void {
    if (running) return;
    running = pump().finally(() => {
      running = undefined;
      if (queue.length > 0) kick();
    });
  }

  return {
    publish(namespace, topic, schema, event) {
      const { promise, resolve } = Promise.withResolvers<void>();
      queue.push({ env: { timestamp: wallClock(), namespace, topic, event: packEvent(schema, event) }, settle: resolve });
      kick();
      return promise;
    },
    async drain(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (queue.length > 0 && Date.now() < deadline) {
        const r = running;
        if (!r) break;
        await Promise.race([r, Bun.sleep(Math.max(0, deadline - Date.now()))]);
      }
    },
    get queued() {
      return queue.length;
    },
  };
}

/** The real forwarder: a ttrpc client to containerd's events service, dialled on demand. */
export function createTtrpcForwarder(ttrpcAddress: string): EventForwarder {
  const path = addressPath(ttrpcAddress);
  let client: Client | undefined;
  let dialing: Promise<Client> | undefined;
  async function get(): Promise<Client> {
    if (client && !client.closed) return client;
    dialing ??= connect(path).finally(() => {
      dialing = undefined;
    });
    client = await dialing;
    return client;
  }
  return {
    async forward(env) {
      const c = await get();
      try {
        await c.call(
          Events,
          "forward",
          {
            envelope: {
              timestamp: env.timestamp,
              namespace: env.namespace,
              topic: env.topic,
              event: env.event,
            },
          },
          { timeoutMs: 5000, namespace: env.namespace },
        );
      } catch (err) {
        c.close();
        client = undefined;
        throw err;
      }
    },
    close() {
      client?.close();
      client = undefined;
    },
  };
}
