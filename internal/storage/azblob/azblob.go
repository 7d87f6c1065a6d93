// Package azblob is the storage.Driver on Azure Blob Storage: one
// container holds every object, under its name as the blob name.
//
// The storage URL is azblob://CONTAINER with optional query parameters
// endpoint (the blob service URL: Azurite's
// http://127.0.0.1:PORT/devstoreaccount1, or a sovereign cloud's) and
// create=true (create the container when it is missing; otherwise a
// missing container is an error). Credentials come from the environment:
// AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with
// AZURE_STORAGE_KEY, or else the default Azure credential chain
// (azidentity.NewDefaultAzureCredential: environment, workload or managed
// identity, …) for AZURE_STORAGE_ACCOUNT.
//
// Requests go through objhttp.Client (fail-fast timeouts, each request
// reported to the Observer) with at most two retries, so an unreachable
// storage fails within seconds with an error wrapping
// storage.ErrStorageUnavailable.
//
// Writers: an ObjectWriter buffers up to one block (8 MiB). Committed
// then, it is one Put Blob. A longer object is staged as blocks directly
// under its final name (Put Block, at most two in flight, buffers reused)
// with block IDs unique to the writer, and Commit is Put Block List: the
// blob appears whole at that moment, never before. If another writer of
// the same name commits first, Azure discards our uncommitted blocks, our
// Put Block List fails (InvalidBlockList), and Commit returns an error
// wrapping storage.ErrCommitRaced.
//
// Abort stops staging, but staged blocks cannot be deleted through the
// API: they stay invisible (uncommitted) until Azure discards them after
// seven days, or at once when any writer commits that name. They count
// against the account's storage meanwhile.
//
// A Driver is safe for concurrent use; an ObjectWriter belongs to one
// goroutine.
package azblob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/storage/objhttp"
)

// Options are the Driver's dependencies.
type Options = objhttp.Options

// Writer tuning; see docs/dependencies.md for the measurements.
const (
	// BlockSize is the threshold of the single-request path and the size
	// of each staged block.
	BlockSize = 8 << 20
	// BlocksInFlight is how many blocks one writer stages at once.
	BlocksInFlight = 2
)

// Retries of one request: a few quick ones, so that an unreachable storage
// fails in seconds rather than minutes.
const (
	maxRetries    = 2
	retryDelay    = 200 * time.Millisecond
	maxRetryDelay = time.Second
)

// Driver is a storage.Driver on one Azure Blob Storage container.
type Driver struct {
	cfg       config
	name      string
	log       *slog.Logger
	service   *service.Client
	container *container.Client
	sharedKey *service.SharedKeyCredential // nil unless shared-key auth

	blockSize int // BlockSize; tests and benchmarks change it
	inFlight  int // BlocksInFlight
	pool      sync.Pool

	udMu     sync.Mutex // guards udKey, udExpiry
	udKey    *service.UserDelegationCredential
	udExpiry time.Time
}

var (
	_ storage.Driver = (*Driver)(nil)
	_ storage.Pinger = (*Driver)(nil)
	_ storage.Signer = (*Driver)(nil)
	_ storage.Getter = (*Driver)(nil)
)

// Open connects to the container u names (azblob://CONTAINER?…) and
// checks that it exists, creating it when u has create=true. When the
// storage cannot be reached it returns the driver together with an error
// wrapping storage.ErrStorageUnavailable: the caller may keep the driver,
// which works once the storage answers.
func Open(ctx context.Context, u *url.URL, opts Options) (*Driver, error) {
	cfg, err := parseConfig(u, os.Getenv)
	if err != nil {
		return nil, err
	}
	d := &Driver{cfg: cfg, name: cfg.String(), log: opts.Logger, blockSize: BlockSize, inFlight: BlocksInFlight}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	client := objhttp.Client(opts.Observer)
	copts := &service.ClientOptions{ClientOptions: policy.ClientOptions{
		Transport: client,
		Retry: policy.RetryOptions{
			MaxRetries:    maxRetries,
			RetryDelay:    retryDelay,
			MaxRetryDelay: maxRetryDelay,
		},
		Telemetry: policy.TelemetryOptions{Disabled: true},
	}}
	svcURL := cfg.serviceURL + "/"
	switch cfg.cred {
	case credSharedKey:
		d.sharedKey, err = service.NewSharedKeyCredential(cfg.account, cfg.key)
		if err == nil {
			d.service, err = service.NewClientWithSharedKeyCredential(svcURL, d.sharedKey, copts)
		}
	case credSAS:
		d.service, err = service.NewClientWithNoCredential(svcURL+"?"+cfg.sas, copts)
	case credDefault:
		var cred azcore.TokenCredential
		cred, err = azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
			ClientOptions: policy.ClientOptions{Transport: client},
		})
		if err == nil {
			d.service, err = service.NewClient(svcURL, cred, copts)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", d.name, cfg.cred, err)
	}
	d.container = d.service.NewContainerClient(cfg.container)
	d.pool.New = func() any { b := make([]byte, 0, d.blockSize); return &b }

	if err := d.ensure(ctx); err != nil {
		if errors.Is(err, storage.ErrStorageUnavailable) {
			// Usable once the storage answers: Ping (the /readyz check)
			// then also creates a missing container when create=true.
			return d, err
		}
		return nil, err
	}
	return d, nil
}

// ensure checks the container and, with create=true, creates it when
// missing.
func (d *Driver) ensure(ctx context.Context) error {
	err := d.check(ctx)
	if err == nil || !errors.Is(err, errNoContainer) || !d.cfg.create {
		return err
	}
	_, err = d.container.Create(objhttp.WithOp(ctx, "CreateContainer"), nil)
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return d.fail("create container", "", err)
	}
	d.log.Info("created storage container", "storage", d.name)
	return nil
}

// errNoContainer marks a container that does not exist.
var errNoContainer = errors.New("container does not exist")

// Ping reads the container's properties: one request that checks the
// storage answers, the credentials work and the container exists (and,
// with create=true, creates it when missing).
func (d *Driver) Ping(ctx context.Context) error { return d.ensure(ctx) }

// check reads the container's properties.
func (d *Driver) check(ctx context.Context) error {
	_, err := d.container.GetProperties(objhttp.WithOp(ctx, "GetContainerProperties"), nil)
	if err != nil {
		return d.fail("check container", "", err)
	}
	return nil
}

// String is azblob://CONTAINER, with ?endpoint= when one was given.
func (d *Driver) String() string { return d.name }

// fail turns an SDK error into the driver's: fs.ErrNotExist for a missing
// blob, storage.ErrStorageUnavailable for an unreachable or failing
// storage, a hint for a missing container or refused credentials, all
// naming the storage, the operation and the object.
func (d *Driver) fail(op, name string, err error) error {
	what := d.name + ": " + op
	if name != "" {
		what += " " + name
	}
	var re *azcore.ResponseError
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) {
		return fmt.Errorf("%s: authenticating with the %s failed: check the identity's configuration: %w", what, d.cfg.cred, err)
	}
	if !errors.As(err, &re) {
		if errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s: %w", what, err)
		}
		return fmt.Errorf("%s: %w: %w", what, storage.ErrStorageUnavailable, err)
	}
	short := &respError{status: re.StatusCode, code: re.ErrorCode, err: err}
	switch {
	case re.ErrorCode == string(bloberror.ContainerNotFound):
		return fmt.Errorf("%s: container %q does not exist: create it, or add ?create=true to the storage URL: %w: %w", what, d.cfg.container, errNoContainer, short)
	case re.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s: %w (%w)", what, notExist, short)
	case re.StatusCode == http.StatusForbidden || re.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%s: access refused with %s: check the credentials and the account's role assignments: %w", what, d.cfg.cred, short)
	case re.StatusCode >= 500 || re.StatusCode == http.StatusRequestTimeout || re.StatusCode == http.StatusTooManyRequests:
		return fmt.Errorf("%s: %w: %w", what, storage.ErrStorageUnavailable, short)
	}
	return fmt.Errorf("%s: %w", what, short)
}

// respError is an Azure error response in one line; Unwrap gives the
// SDK's *azcore.ResponseError with the whole response.
type respError struct {
	status int
	code   string
	err    error
}

func (e *respError) Error() string {
	if e.code == "" {
		return fmt.Sprintf("status %d", e.status)
	}
	return fmt.Sprintf("status %d %s", e.status, e.code)
}

func (e *respError) Unwrap() error { return e.err }
