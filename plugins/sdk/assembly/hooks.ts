// Typed inputs and outputs of cryo's three hooks (admit, checkpoint, restore).
// The JSON shapes are defined in cryo's src/plugins/hook-schemas.ts and published as JSON Schema
// in plugins/sdk/schema/*.json; this file mirrors them for AssemblyScript.

import { Config, Host } from "@extism/as-pdk";
import { JsonValue, parseJson } from "./json";

/** The image a container runs (name, digest, labels, config), when the shim knows it. */
export class ImageInfo {
  name: string = "";
  /** Manifest digest (sha256:...), or "" when unknown. */
  digest: string = "";
  labels: Map<string, string> = new Map<string, string>();
  /** The OCI image config document, or null. */
  config: JsonValue | null = null;

  static fromJson(v: JsonValue | null): ImageInfo | null {
    if (v === null || !v.isObject()) return null;
    const i = new ImageInfo();
    i.name = v.getString("name");
    i.digest = v.getString("digest");
    i.labels = v.getStringMap("labels");
    i.config = v.get("config");
    return i;
  }

  /** The registry host of the image name ("docker.io" when the name has none). */
  registry(): string {
    const slash = this.name.indexOf("/");
    if (slash < 0) return "docker.io";
    const first = this.name.substring(0, slash);
    if (first.indexOf(".") >= 0 || first.indexOf(":") >= 0 || first == "localhost") return first;
    return "docker.io";
  }

  /** True when the reference itself is pinned by digest (name@sha256:...); a digest containerd knows for a tag does not count. */
  pinned(): bool {
    return this.name.indexOf("@sha256:") >= 0;
  }
}

/** Input of the `admit` hook: the container about to be created. */
export class AdmitInput {
  id: string = "";
  namespace: string = "";
  bundle: string = "";
  annotations: Map<string, string> = new Map<string, string>();
  /** The whole OCI runtime spec (config.json) as JSON. */
  spec: JsonValue = JsonValue.newObject();
  image: ImageInfo | null = null;
  /**
   * True at the Create of a restore: the container's processes and mounts come back from its checkpoint, so
   * setEnv and removeMount are not applied then (resources and annotations are).
   */
  restore: bool = false;

  static parse(text: string): AdmitInput {
    const v = parseJson(text);
    const i = new AdmitInput();
    i.id = v.getString("id");
    i.namespace = v.getString("namespace");
    i.bundle = v.getString("bundle");
    i.annotations = v.getStringMap("annotations");
    const spec = v.get("spec");
    if (spec !== null) i.spec = spec;
    i.image = ImageInfo.fromJson(v.get("image"));
    i.restore = v.getBool("restore");
    return i;
  }

  /** The capabilities in the spec's bounding set. */
  boundingCapabilities(): string[] {
    const caps = this.spec.path(["process", "capabilities"]);
    return caps === null ? new Array<string>() : caps.getStrings("bounding");
  }

  /** The namespace types the container gets of its own (pid, network, ipc, uts, mount, ...). */
  namespaceTypes(): string[] {
    const out: string[] = [];
    const list = this.spec.path(["linux", "namespaces"]);
    if (list === null) return out;
    for (let i = 0; i < list.items.length; i++) {
      const ns = list.items[i];
      // A namespace with a path joins an existing one (often the host's): not the container's own.
      if (ns.getString("path") == "") out.push(ns.getString("type"));
    }
    return out;
  }

  /** Of pid, network, ipc and uts: those the container shares with the host (no own namespace). */
  hostNamespaces(): string[] {
    const own = this.namespaceTypes();
    const wanted = ["pid", "network", "ipc", "uts"];
    const out: string[] = [];
    for (let i = 0; i < wanted.length; i++) if (!own.includes(wanted[i])) out.push(wanted[i]);
    return out;
  }

  /** The spec's linux.maskedPaths. */
  maskedPaths(): string[] {
    const linux = this.spec.get("linux");
    return linux === null ? new Array<string>() : linux.getStrings("maskedPaths");
  }

  /** The spec's process.env as NAME -> value. */
  env(): Map<string, string> {
    const out = new Map<string, string>();
    const p = this.spec.get("process");
    if (p === null) return out;
    const list = p.getStrings("env");
    for (let i = 0; i < list.length; i++) {
      const eq = list[i].indexOf("=");
      if (eq > 0) out.set(list[i].substring(0, eq), list[i].substring(eq + 1));
    }
    return out;
  }

  /** The destinations of the spec's mounts. */
  mountDestinations(): string[] {
    const out: string[] = [];
    const mounts = this.spec.get("mounts");
    if (mounts === null) return out;
    for (let i = 0; i < mounts.items.length; i++) out.push(mounts.items[i].getString("destination"));
    return out;
  }
}

/** Output of the `admit` hook: allow or deny, and spec changes. */
export class AdmitOutput {
  allowed: bool = true;
  reason: string = "";
  private changes: JsonValue = JsonValue.newObject();

  /** Allow, changing nothing (add changes with the set* methods). */
  static allow(): AdmitOutput {
    return new AdmitOutput();
  }
  /** Deny with a reason the user will see. */
  static deny(reason: string): AdmitOutput {
    const o = new AdmitOutput();
    o.allowed = false;
    o.reason = reason;
    return o;
  }
  /** Adds or overrides an environment variable. */
  setEnv(name: string, value: string): AdmitOutput {
    this.changes.child("env").set(name, JsonValue.newString(value));
    return this;
  }
  /** Adds or overrides an annotation. */
  setAnnotation(key: string, value: string): AdmitOutput {
    this.changes.child("annotations").set(key, JsonValue.newString(value));
    return this;
  }
  /** Sets the memory limit in bytes. */
  setMemoryLimit(bytes: i64): AdmitOutput {
    this.changes.child("resources").child("memory").set("limit", JsonValue.newNumber(<f64>bytes));
    return this;
  }
  /** Sets the CPU quota and period in microseconds (e.g. 50000/100000 = half a CPU). */
  setCpuQuota(quota: i64, period: i64): AdmitOutput {
    const cpu = this.changes.child("resources").child("cpu");
    cpu.set("quota", JsonValue.newNumber(<f64>quota));
    cpu.set("period", JsonValue.newNumber(<f64>period));
    return this;
  }
  /** Sets the maximum number of processes. */
  setPidsLimit(limit: i64): AdmitOutput {
    this.changes.child("resources").child("pids").set("limit", JsonValue.newNumber(<f64>limit));
    return this;
  }
  /** Removes the mount at `destination`. */
  removeMount(destination: string): AdmitOutput {
    let list = this.changes.get("removeMounts");
    if (list === null) {
      list = JsonValue.newArray();
      this.changes.set("removeMounts", list);
    }
    list.push(JsonValue.newString(destination));
    return this;
  }
  toJson(): string {
    const v = JsonValue.newObject().set("allow", JsonValue.newBool(this.allowed));
    if (this.reason != "") v.set("reason", JsonValue.newString(this.reason));
    if (this.changes.keys.length > 0) v.set("changes", this.changes);
    return v.toString();
  }
}

/** A set of CRIU options (checkpoint or restore): read what was requested, set what to use. */
export class CriuOptions {
  constructor(public raw: JsonValue = JsonValue.newObject()) {}
  /** True when the option is present. */
  has(name: string): bool {
    return this.raw.has(name);
  }
  /** A boolean option (false when absent). */
  flag(name: string): bool {
    return this.raw.getBool(name);
  }
  /** A string option ("" when absent). */
  text(name: string): string {
    return this.raw.getString(name);
  }
  /** A number option (0 when absent), e.g. number("ghostLimit"). */
  number(name: string): f64 {
    return this.raw.getNumber(name);
  }
  /** Sets a number option, e.g. setNumber("compressionLevel", 3); cryo refuses a fraction where it wants an integer. */
  setNumber(name: string, value: f64): CriuOptions {
    this.raw.set(name, JsonValue.newNumber(value));
    return this;
  }
  /** Sets a boolean option, e.g. setFlag("tcpEstablished", true). */
  setFlag(name: string, value: bool): CriuOptions {
    this.raw.set(name, JsonValue.newBool(value));
    return this;
  }
  /** Sets a string option, e.g. setText("cgroupsMode", "soft") or setText("compression", "zstd"). */
  setText(name: string, value: string): CriuOptions {
    this.raw.set(name, JsonValue.newString(value));
    return this;
  }
  /** Adds a veth pair to re-create on restore. */
  addVethPair(inside: string, outside: string): CriuOptions {
    let list = this.raw.get("vethPairs");
    if (list === null) {
      list = JsonValue.newArray();
      this.raw.set("vethPairs", list);
    }
    list.push(JsonValue.newObject().set("inside", JsonValue.newString(inside)).set("outside", JsonValue.newString(outside)));
    return this;
  }
}

/** Input of the `checkpoint` hook: facts about the container and the requested CRIU options. */
export class CheckpointInput {
  id: string = "";
  namespace: string = "";
  annotations: Map<string, string> = new Map<string, string>();
  image: ImageInfo | null = null;
  processCount: i64 = 0;
  memoryBytes: i64 = 0;
  tcpConnections: i64 = 0;
  requested: CriuOptions = new CriuOptions();

  static parse(text: string): CheckpointInput {
    const v = parseJson(text);
    const i = new CheckpointInput();
    i.id = v.getString("id");
    i.namespace = v.getString("namespace");
    i.annotations = v.getStringMap("annotations");
    i.image = ImageInfo.fromJson(v.get("image"));
    i.processCount = <i64>v.getNumber("processCount");
    i.memoryBytes = <i64>v.getNumber("memoryBytes");
    i.tcpConnections = <i64>v.getNumber("tcpConnections");
    const r = v.get("requested");
    if (r !== null && r.isObject()) i.requested = new CriuOptions(r);
    return i;
  }
}

/** Output of the `checkpoint` and `restore` hooks: allow or deny, and options to set. */
export class OptionsOutput {
  allowed: bool = true;
  reason: string = "";
  /** Options to set; options not named here keep their requested value. */
  options: CriuOptions = new CriuOptions();

  static allow(): OptionsOutput {
    return new OptionsOutput();
  }
  static deny(reason: string): OptionsOutput {
    const o = new OptionsOutput();
    o.allowed = false;
    o.reason = reason;
    return o;
  }
  toJson(): string {
    const v = JsonValue.newObject().set("allow", JsonValue.newBool(this.allowed));
    if (this.reason != "") v.set("reason", JsonValue.newString(this.reason));
    if (this.options.raw.keys.length > 0) v.set("options", this.options.raw);
    return v.toString();
  }
}

/** What a checkpoint records about its origin. */
export class CheckpointMetadata {
  /** The id of the checkpointed container: not the restore's `id` when it is restored under a new name. */
  containerId: string = "";
  originHost: string = "";
  kernel: string = "";
  criuVersion: string = "";
  image: ImageInfo | null = null;
  createdAt: string = "";
  annotations: Map<string, string> = new Map<string, string>();
}

/** Input of the `restore` hook: the checkpoint's metadata and the requested restore options. */
export class RestoreInput {
  id: string = "";
  namespace: string = "";
  checkpoint: CheckpointMetadata = new CheckpointMetadata();
  requested: CriuOptions = new CriuOptions();

  static parse(text: string): RestoreInput {
    const v = parseJson(text);
    const i = new RestoreInput();
    i.id = v.getString("id");
    i.namespace = v.getString("namespace");
    const c = v.get("checkpoint");
    if (c !== null) {
      i.checkpoint.containerId = c.getString("containerId");
      i.checkpoint.originHost = c.getString("originHost");
      i.checkpoint.kernel = c.getString("kernel");
      i.checkpoint.criuVersion = c.getString("criuVersion");
      i.checkpoint.image = ImageInfo.fromJson(c.get("image"));
      i.checkpoint.createdAt = c.getString("createdAt");
      i.checkpoint.annotations = c.getStringMap("annotations");
    }
    const r = v.get("requested");
    if (r !== null && r.isObject()) i.requested = new CriuOptions(r);
    return i;
  }
}

/** Writes a string as the call's output (UTF-8). */
export function output(text: string): void {
  Host.output(Uint8Array.wrap(String.UTF8.encode(text)));
}

/** A value from the plugin's config (the `config` table of its entry in cryo's config), or `fallback`. */
export function config(key: string, fallback: string = ""): string {
  const v = Config.get(key);
  return v === null ? fallback : v;
}

/** Runs an admission policy: parses the input, calls `policy`, writes its output. Use as `export function admit(): i32 { return handleAdmit(myPolicy); }`. */
export function handleAdmit(policy: (input: AdmitInput) => AdmitOutput): i32 {
  output(policy(AdmitInput.parse(Host.inputString())).toJson());
  return 0;
}

/** Runs a checkpoint-options policy. */
export function handleCheckpoint(policy: (input: CheckpointInput) => OptionsOutput): i32 {
  output(policy(CheckpointInput.parse(Host.inputString())).toJson());
  return 0;
}

/** Runs a restore-admission policy. */
export function handleRestore(policy: (input: RestoreInput) => OptionsOutput): i32 {
  output(policy(RestoreInput.parse(Host.inputString())).toJson());
  return 0;
}
