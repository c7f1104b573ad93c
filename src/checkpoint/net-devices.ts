/**
 * CRIU's netdev image (the links of a dumped network namespace), decoded with the generated protobuf types.
 * Its own module: CRIU's images are proto2, and the first proto2 file a process loads costs protobuf-es
 * 12-15 ms here (compiled shim), so a dump loads it while CRIU works (checkpoint-dump.ts), as it does CRIU's stats.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { ImageMagic, imageEntries } from "../criu/image-file.ts";
import { NetDeviceEntrySchema, NetDeviceType } from "../gen/criu/netdev_pb.ts";

const IFF_UP = 0x1;

/** The ifindex of the loopback link in a netdev image when it is up; undefined when down, absent or unreadable. */
export function loopbackUpIndex(netdev: Uint8Array, name = "netdev.img"): number | undefined {
  try {
    for (const raw of imageEntries(netdev, name, ImageMagic.netdev)) {
      const d = fromBinary(NetDeviceEntrySchema, raw);
      if (d.type === NetDeviceType.ND_TYPE_LOOPBACK) return (d.flags & IFF_UP) !== 0 ? d.ifindex : undefined;
    }
  } catch {
    // a format this does not know: left for CRIU
  }
  return undefined;
}
