// checkpoint-defaults: an operator's checkpoint policy. Containers the policy calls "stateful" get
// CRIU's tcp-established at checkpoint and at restore, whatever their owner asked for; containers that
// use too much memory are not checkpointed at all.
//
// A container is stateful when
//   - its annotation named by tcp_established_annotation has the value "true", or
//   - its image name starts with one of tcp_established_images.
// At restore the same test runs on the checkpoint's metadata (the annotations and image recorded in
// it), so a connection dumped because of this policy is also restored.
//
// config:
//   tcp_established_annotation  annotation key marking a stateful container (default
//                               policy.cryo.dev/stateful; "none" turns the annotation test off —
//                               Extism hands a plugin an empty config value as an absent one)
//   tcp_established_images      comma-separated image-name prefixes, e.g. "registry.example/db/,docker.io/library/postgres"
//                               (default none). The image name is the hook input's image, or the
//                               CRI annotation io.kubernetes.cri.image-name when the image is unknown.
//   max_memory_gib              the largest container (GiB, may be fractional) that may be
//                               checkpointed (default 8)
//   local_pages_above_gib       containers using more memory than this (GiB, may be fractional) keep
//                               their page images in this host's page store instead of the checkpoint
//                               (cryo.checkpoint/local-pages: much faster for big containers, but
//                               restorable on this host only); default "none": never turned on
//   compress_above_gib          containers using more memory than this (GiB, may be fractional) get their page
//                               images zstd-compressed (cryo.checkpoint/compression=zstd: containerd copies and
//                               hashes fewer bytes; memory that does not compress is stored plain), unless their
//                               pages stay local; default "none": never turned on

import { CheckpointInput, config, handleCheckpoint, handleRestore, ImageInfo, log, OptionsOutput, RestoreInput } from "../sdk/assembly/index";

export function checkpoint(): i32 {
  return handleCheckpoint(onCheckpoint);
}

export function restore(): i32 {
  return handleRestore(onRestore);
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

function onCheckpoint(input: CheckpointInput): OptionsOutput {
  const maxGib = parseFloat(config("max_memory_gib", "8"));
  if (<f64>input.memoryBytes > maxGib * GIB) {
    const gib = <f64>input.memoryBytes / GIB;
    return OptionsOutput.deny("container uses " + gib.toString().slice(0, 6) + " GiB of memory, above the checkpoint limit of " + maxGib.toString() + " GiB");
  }
  const out = OptionsOutput.allow();
  const why = statefulBecause(input.annotations, input.image);
  if (why != "" && !input.requested.flag("tcpEstablished")) {
    out.options.setFlag("tcpEstablished", true);
    log("checkpoint of " + input.id + ": tcp-established on (" + why + ", " + input.tcpConnections.toString() + " established connections)");
  }
  const localAbove = config("local_pages_above_gib", "none");
  if (localAbove != "none" && <f64>input.memoryBytes > parseFloat(localAbove) * GIB && !input.requested.flag("localPages")) {
    out.options.setFlag("localPages", true);
    log("checkpoint of " + input.id + ": local pages on (memory above " + localAbove + " GiB)");
  }
  // Page images kept in the store are not copied into the checkpoint: compressing them would save nothing, and cryo
  // refuses the two together.
  const compressAbove = config("compress_above_gib", "none");
  const local = input.requested.flag("localPages") || out.options.flag("localPages");
  if (compressAbove != "none" && !local && <f64>input.memoryBytes > parseFloat(compressAbove) * GIB && input.requested.text("compression") != "zstd") {
    out.options.setText("compression", "zstd");
    log("checkpoint of " + input.id + ": zstd compression on (memory above " + compressAbove + " GiB)");
  }
  return out;
}

function onRestore(input: RestoreInput): OptionsOutput {
  const out = OptionsOutput.allow();
  const why = statefulBecause(input.checkpoint.annotations, input.checkpoint.image);
  if (why != "" && !input.requested.flag("tcpEstablished")) {
    out.options.setFlag("tcpEstablished", true);
    log("restore of " + input.id + ": tcp-established on (" + why + ")");
  }
  return out;
}

/** Why the policy calls this container stateful ("annotation K=true", "image N"), or "" when it does not. */
function statefulBecause(annotations: Map<string, string>, image: ImageInfo | null): string {
  const key = config("tcp_established_annotation", "policy.cryo.dev/stateful");
  if (key != "none" && annotations.has(key) && annotations.get(key) == "true") return "annotation " + key + "=true";
  const name = imageName(annotations, image);
  if (name == "") return "";
  const prefixes = config("tcp_established_images", "").split(",");
  for (let i = 0; i < prefixes.length; i++) {
    const p = prefixes[i].trim();
    if (p != "" && name.startsWith(p)) return "image " + name;
  }
  return "";
}

/** The image's name: the hook's image when known, else the one CRI records in the annotations. */
function imageName(annotations: Map<string, string>, image: ImageInfo | null): string {
  if (image !== null && image.name != "") return image.name;
  const cri = "io.kubernetes.cri.image-name";
  return annotations.has(cri) ? annotations.get(cri) : "";
}
