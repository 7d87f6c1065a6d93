package registry

import "github.com/airlockdev/airlock/internal/storage"

// Store is the storage contract the HTTP API serves from: storage.Store
// itself (not a copy), so every implementation — LocalStore, the
// pull-through cache — meets it without importing this package. The
// errors it reports are mapped to OCI wire errors in toOCI.
type Store = storage.Store
