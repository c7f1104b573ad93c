/** A TCP port nothing listens on right now on 127.0.0.1 (bound with port 0, then closed). */
export function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}
