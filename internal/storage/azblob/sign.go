package azblob

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/airlockdev/airlock/internal/storage/objhttp"
)

// clockSkew is how far before now a signature starts being valid, for
// clients and servers whose clocks differ a little.
const clockSkew = 5 * time.Minute

// SignedURL returns the blob's URL with a read-only SAS valid for ttl:
// signed with the account key when the driver has one, else with a user
// delegation key (Azure AD credentials; the key is cached and reused).
func (d *Driver) SignedURL(ctx context.Context, name string, ttl time.Duration) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	start := time.Now().UTC().Add(-clockSkew)
	expiry := time.Now().UTC().Add(ttl)
	v := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPS,
		StartTime:     start,
		ExpiryTime:    expiry,
		Permissions:   (&sas.BlobPermissions{Read: true}).String(),
		ContainerName: d.cfg.container,
		BlobName:      name,
	}
	if strings.HasPrefix(d.cfg.serviceURL, "http://") {
		v.Protocol = sas.ProtocolHTTPSandHTTP
	}
	var q sas.QueryParameters
	var err error
	switch d.cfg.cred {
	case credSharedKey:
		q, err = v.SignWithSharedKey(d.sharedKey)
	case credDefault:
		var key *service.UserDelegationCredential
		if key, err = d.delegationKey(ctx, expiry); err != nil {
			return "", err
		}
		q, err = v.SignWithUserDelegation(key)
	default:
		return "", fmt.Errorf("%s: sign a URL for %s: the driver authenticates with a %s and cannot sign; give an account key (AZURE_STORAGE_KEY) or Azure AD credentials, or turn off storage redirects", d.name, name, d.cfg.cred)
	}
	if err != nil {
		return "", fmt.Errorf("%s: sign a URL for %s: %w", d.name, name, err)
	}
	return d.container.NewBlobClient(name).URL() + "?" + q.Encode(), nil
}

// Lifetime of a user delegation key (Azure allows up to seven days).
const (
	delegationKeyLife = 24 * time.Hour
	maxDelegationLife = 7 * 24 * time.Hour
)

// delegationKey returns a user delegation key valid at least until
// expiry, asking the service for a new one only when the cached one would
// expire earlier.
func (d *Driver) delegationKey(ctx context.Context, expiry time.Time) (*service.UserDelegationCredential, error) {
	d.udMu.Lock()
	defer d.udMu.Unlock()
	if d.udKey != nil && !d.udExpiry.Before(expiry) {
		return d.udKey, nil
	}
	now := time.Now().UTC()
	keyExpiry := now.Add(delegationKeyLife)
	if keyExpiry.Before(expiry) {
		keyExpiry = expiry
	}
	if keyExpiry.After(now.Add(maxDelegationLife)) {
		return nil, fmt.Errorf("%s: a signed URL valid until %s is longer than Azure's 7-day limit for user delegation keys", d.name, expiry.Format(time.RFC3339))
	}
	key, err := d.service.GetUserDelegationCredential(objhttp.WithOp(ctx, "GetUserDelegationKey"), service.KeyInfo{
		Start:  to.Ptr(now.Add(-clockSkew).Format(sas.TimeFormat)),
		Expiry: to.Ptr(keyExpiry.Format(sas.TimeFormat)),
	}, nil)
	if err != nil {
		return nil, d.fail("get a user delegation key to sign URLs", "", err)
	}
	d.udKey, d.udExpiry = key, keyExpiry
	return key, nil
}
