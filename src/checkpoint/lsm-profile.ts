/** An LSM profile for CRIU's restore (`--lsm-profile`), as the config file, annotations and the plan take it. */
import { z } from "zod";

/**
 * `apparmor:NAME`, `selinux:LABEL` (a non-empty name or label after the colon) or `none:` (anything after it; CRIU then
 * applies no profile), which is what CRIU's lsm_check_opts takes. Anything else ("foo", "apparmor", "smack:x") failed
 * only inside CRIU, at the restore, with "invalid argument ... for --lsm-profile" or "unknown lsm".
 */
export function isLsmProfile(profile: string): boolean {
  return /^(?:apparmor|selinux):.+$/s.test(profile) || profile.startsWith("none:");
}

/** What isLsmProfile refuses, in words. */
export const LSM_PROFILE_RULE = "want apparmor:NAME, selinux:LABEL or none:";

/** An LSM profile, checked with isLsmProfile. */
export const lsmProfileSchema = z.string().min(1).refine(isLsmProfile, LSM_PROFILE_RULE);
