package s3

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/aws/smithy-go"

	"github.com/airlockdev/airlock/internal/storage"
)

// statusOf is the HTTP status of the storage's answer in err, or 0 when
// there was no answer (refused, timed out, cancelled).
func statusOf(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// codeOf is the S3 error code in err ("NoSuchKey", "PreconditionFailed"), or "".
func codeOf(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// isConditionConflict is S3's answer to a write that lost a race: 412
// for a failed If-None-Match, or 409 ConditionalRequestConflict for a
// write that conflicted with another in progress. Other 409s (versitygw's
// posix backend answers ExistingObjectIsDirectory or ObjectParentIsFile
// for a name that is also a prefix of others) are not races.
func isConditionConflict(err error) bool {
	s := statusOf(err)
	return s == 412 || s == 409 && codeOf(err) == "ConditionalRequestConflict"
}

// fail maps an SDK error of op on name to the storage contract's errors:
// 404 wraps fs.ErrNotExist; no answer, or a 5xx or 429 after the retries,
// wraps storage.ErrStorageUnavailable. nil stays nil.
func (d *Driver) fail(op, name string, err error) error {
	if err == nil {
		return nil
	}
	status := statusOf(err)
	switch {
	case status == 404:
		return fmt.Errorf("%s: %s %s: %w", d, op, name, fs.ErrNotExist)
	case status >= 500 || status == 429:
		return fmt.Errorf("%s: %s %s: %w: %w", d, op, name, storage.ErrStorageUnavailable, err)
	case status == 0 && !errors.Is(err, context.Canceled):
		// No answer: refused, reset, dial or header timeout, deadline.
		return fmt.Errorf("%s: %s %s: %w: %w", d, op, name, storage.ErrStorageUnavailable, err)
	}
	return fmt.Errorf("%s: %s %s: %w", d, op, name, err)
}
