// Test plugin for the network grant (grants.allowed_hosts): at admit it makes one Extism HTTP request
// (the host function http_request) to the URL in its config and allows with the response in its
// reason and in an annotation, so a test can see that the request went through. The SDK (as-pdk
// 1.0.0) declares http_request but has no wrapper for it, so this plugin calls it directly.
//
// config: url (required), method (default GET).
// When the host answers with no response (offset 0), the plugin aborts: it never pretends it got one.
import { Memory } from "@extism/as-pdk";
import { AdmitInput, AdmitOutput, JsonValue, config, handleAdmit } from "../sdk/assembly/index";

@external("extism:host/env", "http_request")
declare function http_request(req: u64, body: u64): u64;
@external("extism:host/env", "http_status_code")
declare function http_status_code(): i32;
@external("extism:host/env", "length")
declare function extism_length(offset: u64): u64;

export function admit(): i32 {
  return handleAdmit(policy);
}

function policy(input: AdmitInput): AdmitOutput {
  const url = config("url", "");
  if (url == "") return AdmitOutput.deny("http-fetch: no url in config");
  const req = JsonValue.newObject()
    .set("url", JsonValue.newString(url))
    .set("method", JsonValue.newString(config("method", "GET")))
    .set("headers", JsonValue.newObject().set("x-cryo-container", JsonValue.newString(input.id)));
  const reqMem = Memory.allocateString(req.toString());
  const resOffset = http_request(reqMem.offset, 0);
  reqMem.free();
  if (resOffset == 0) throw new Error("http-fetch: no response from the host for " + url);
  const body = new Memory(resOffset, extism_length(resOffset)).toString();
  const status = http_status_code();
  const out = AdmitOutput.allow()
    .setAnnotation("cryo.test/http-status", status.toString())
    .setAnnotation("cryo.test/http-body", body);
  out.reason = "fetched " + url + ": " + status.toString() + " " + body;
  return out;
}
