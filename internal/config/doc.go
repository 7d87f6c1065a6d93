// Package config owns airlock.yaml: its format, its strict decoding into
// typed configuration, its defaults, and errors a user can act on.
//
// # Data flow
//
// Load (or Parse) takes the file's bytes through these steps, collecting
// every problem rather than stopping at the first:
//
//  1. Limits: at most 4 MiB, valid UTF-8 without control characters, one
//     YAML document, parsed by gopkg.in/yaml.v3 into a yaml.Node tree.
//  2. Defaults: every configuration struct with a SetDefaults() method
//     (pointer receiver) gets it called on its zero value, nested structs
//     first, before the file is decoded over it. List elements and map
//     values get theirs when created. A key that is absent or null keeps the
//     default; a list or map in the file replaces the default one.
//  3. Strict decoding by reflection, driven by `yaml:"name"` struct tags (an
//     untagged exported field is named like its Go name with a lowercase
//     first letter; `yaml:",inline"` embeds a struct's fields). Unknown keys
//     (with a "did you mean" hint), duplicate keys, wrong kinds and
//     out-of-range numbers are errors. Supported field types: string, bool,
//     every int and uint size, float32/64, time.Duration (a string such as
//     "10s"), any type implementing encoding.TextUnmarshaler (netip.Prefix,
//     or a named int64 size type, which also takes a plain integer),
//     pointers, slices, maps with string keys and nested structs. Anchors,
//     aliases and merge keys (<<) are allowed; at most 1,000,000 values are
//     decoded, counting each use of an alias, so nested aliases cannot
//     explode.
//  4. Paths: string and []string fields tagged `config:"path"` are resolved
//     against the config file's directory (Load makes them absolute). The
//     embedded default's paths stay relative to the working directory.
//  5. Validation: each section's type has Validate(report func(path, msg
//     string)) and reports paths relative to the section; this package
//     prefixes them with the section's key.
//
// Every error reads file:line:col: field.path: message. Decoding errors
// point at the offending value; validation errors point at the key of the
// setting, or at its nearest parent written in the file when the setting
// was left to its default (1:1 for the document). Validation stays quiet
// about a setting that failed to decode. Paths use the YAML keys, [i] for
// list elements and ["key"] (strconv.Quote) for map entries, for example
// registry.users[0].passwordHash.
//
// Domain packages own their section's type; they cannot import this package
// (it imports them), so the protocol above is structural: tags, SetDefaults
// and Validate.
//
// # Concurrency
//
// Load, Parse and Default are safe for concurrent use; the package has no
// mutable state. A decoded File is a plain value owned by the caller.
package config
