/** The host part of a page server's address, as the config file, annotations and the plan take it. */
import { isIP } from "node:net";
import { z } from "zod";

/**
 * An IPv4 or IPv6 address, or a host name (RFC 1123: dot-separated labels of letters, digits and '-', 1 to 63
 * bytes each, not starting or ending with '-'; 253 bytes in all). CRIU resolves it with getaddrinfo at the dump
 * or the restore; anything else ("a b", "10.0.0.1/24", "host:1") failed only there, after the container was frozen
 * (post-copy) or its restore had begun (lazy pages).
 */
export function isPageServerHost(host: string): boolean {
  if (isIP(host) !== 0) return true;
  if (host.length > 253) return false;
  return host.split(".").every((label) => /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label));
}

/** What isPageServerHost refuses, in words. */
export const PAGE_SERVER_HOST_RULE = "want an IPv4 or IPv6 address or a host name (letters, digits, '-' and '.')";

/** A page server's host, checked with isPageServerHost. */
export const pageServerHostSchema = z.string().min(1).refine(isPageServerHost, PAGE_SERVER_HOST_RULE);
