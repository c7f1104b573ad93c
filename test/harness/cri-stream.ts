/**
 * A client of the CRI stream server (containerd's, at the URL CRI Exec or Attach answers): the kubelet's streaming
 * protocol over a WebSocket, `v4.channel.k8s.io`. Each binary message starts with its channel (0 stdin, 1 stdout,
 * 2 stderr, 3 the error channel: a Kubernetes Status in JSON, with the exit code of an exec that failed).
 */

/** What a stream carried until the server closed it. */
export interface StreamResult {
  stdout: string;
  stderr: string;
  /** The exit code: 0 for a Status "Success", the "ExitCode" cause of a "NonZeroExitCode" one; undefined without a status. */
  exitCode: number | undefined;
  /** The error channel's Status, as sent. */
  status: string;
}

/**
 * Opens the stream server's URL (http:// from CRI), sends stdin when given, and collects the output until the server
 * closes, or until stdout matches closeWhenStdout.
 */
export function streamCri(url: string, options: { stdin?: string; timeoutMs?: number; closeWhenStdout?: RegExp } = {}): Promise<StreamResult> {
  const ws = new WebSocket(url.replace(/^http/, "ws"), ["v4.channel.k8s.io"]);
  ws.binaryType = "arraybuffer";
  const out: Record<number, string> = { 1: "", 2: "", 3: "" };
  const decoder = new TextDecoder();
  return new Promise<StreamResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error(`stream ${url}: no end within ${options.timeoutMs ?? 30_000} ms`));
    }, options.timeoutMs ?? 30_000);
    ws.onopen = () => {
      if (options.stdin === undefined) return;
      const data = new TextEncoder().encode(options.stdin);
      const frame = new Uint8Array(data.length + 1);
      frame.set(data, 1);
      ws.send(frame);
    };
    ws.onmessage = (m) => {
      const bytes = new Uint8Array(m.data as ArrayBuffer);
      if (bytes.length === 0) return;
      const channel = bytes[0]!;
      if (channel in out) out[channel] += decoder.decode(bytes.subarray(1));
      // An attach ends when the container does: the client closes once it has seen what it waits for.
      if (options.closeWhenStdout?.test(out[1]!)) ws.close();
    };
    ws.onerror = () => {
      clearTimeout(timer);
      reject(new Error(`stream ${url}: websocket error`));
    };
    ws.onclose = () => {
      clearTimeout(timer);
      const status = out[3]!;
      let exitCode: number | undefined;
      if (status !== "") {
        const s = JSON.parse(status) as { status?: string; details?: { causes?: { reason?: string; message?: string }[] } };
        exitCode = s.status === "Success" ? 0 : Number(s.details?.causes?.find((c) => c.reason === "ExitCode")?.message);
      }
      resolve({ stdout: out[1]!, stderr: out[2]!, exitCode, status });
    };
  });
}
