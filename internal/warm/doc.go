// Package warm is the client behind `airlock cache warm`: it pulls a list
// of image references through airlock's own running registry so the
// cache fetches every manifest and blob from the upstream now, rather
// than when a node first needs it.
//
// It owns the warm list format (ParseList: one reference per line, #
// comments), the walk of each image (an index's children for every
// platform or one, then every blob, each blob once per run) and progress
// events. Requests go through internal/ociclient, the plain OCI pull
// client it shares with verify; the registry does the cache rules and the
// upstream fetches. Showing progress is the caller's (cmd/airlock).
//
// Data flow: Run → one goroutine per reference → ociclient.Manifest
// (descending into an index) → ociclient.Blob per blob, bounded by
// Options.Concurrency and verified against its digest → Options.Progress
// events and one Result per reference.
//
// Concurrency: Run blocks until every reference is done; Progress is
// called from several goroutines at once.
package warm
