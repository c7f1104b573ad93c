/**
 * Loaded before every test file (bunfig.toml). ctr 2.2+ prints a "DEPRECATION: The support for cgroup v1 ..."
 * warning on stderr for every command on a cgroup v1 host like this one, which tests that check a command's
 * stderr would take for the shim's. CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS is ctr's own switch for it
 * (cmd/ctr/commands/client.go); ctr 1.6 does not print the warning and ignores the variable.
 */
process.env.CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS ??= "1";
