import { describe, expect, test } from "bun:test";
import { globMatch, matches } from "../../../src/plugins/match.ts";

describe("globMatch", () => {
  test("* spans any characters, ? one, the rest is literal", () => {
    expect(globMatch("docker.io/*", "docker.io/library/busybox:latest")).toBe(true);
    expect(globMatch("docker.io/*", "dockerXio/library")).toBe(false);
    expect(globMatch("prod-?", "prod-1")).toBe(true);
    expect(globMatch("prod-?", "prod-12")).toBe(false);
    expect(globMatch("a+b(c)", "a+b(c)")).toBe(true);
    expect(globMatch("*", "")).toBe(true);
    expect(globMatch("default", "default2")).toBe(false);
  });
});

describe("matches", () => {
  const subject = { namespace: "prod-eu", annotations: { "cryo.policy": "strict", team: "db" }, image: "ghcr.io/acme/db:1" };
  test("no rules match everything", () => {
    expect(matches({}, subject)).toBe(true);
    expect(matches({ namespaces: [], images: [] }, subject)).toBe(true);
  });
  test("namespaces: one glob must match", () => {
    expect(matches({ namespaces: ["default", "prod-*"] }, subject)).toBe(true);
    expect(matches({ namespaces: ["default"] }, subject)).toBe(false);
  });
  test("images: one glob must match; an unknown image does not match", () => {
    expect(matches({ images: ["ghcr.io/acme/*"] }, subject)).toBe(true);
    expect(matches({ images: ["docker.io/*"] }, subject)).toBe(false);
    expect(matches({ images: ["*"] }, { ...subject, image: null })).toBe(false);
  });
  test("annotations: every key must be present with a matching value", () => {
    expect(matches({ annotations: { "cryo.policy": "str*" } }, subject)).toBe(true);
    expect(matches({ annotations: { "cryo.policy": "strict", team: "web" } }, subject)).toBe(false);
    expect(matches({ annotations: { missing: "*" } }, subject)).toBe(false);
  });
  test("all rules together", () => {
    expect(matches({ namespaces: ["prod-*"], images: ["ghcr.io/*"], annotations: { team: "db" } }, subject)).toBe(true);
    expect(matches({ namespaces: ["prod-*"], images: ["ghcr.io/*"], annotations: { team: "x" } }, subject)).toBe(false);
  });
});
