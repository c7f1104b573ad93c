/** The environment variable that tells a CRIU helper it was started ahead of its call (warm). */
export const CRIU_HELPER_WARM_ENV = "CRYO_CRIU_HELPER_WARM";
