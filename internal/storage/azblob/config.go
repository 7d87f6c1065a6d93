package azblob

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// credKind says how the driver authenticates.
type credKind int

const (
	credSharedKey credKind = iota // account name and key
	credSAS                       // a SAS token from the connection string
	credDefault                   // azidentity.DefaultAzureCredential (managed identity, …)
)

func (k credKind) String() string {
	return [...]string{"shared key", "SAS token", "default Azure credential"}[k]
}

// config is what a storage URL and the environment say.
type config struct {
	container  string
	serviceURL string // blob service URL without trailing slash
	endpoint   string // ?endpoint= as given (scheme://host/path), "" if none
	create     bool
	cred       credKind
	account    string
	key        string // credSharedKey
	sas        string // credSAS, without leading '?'
}

// acceptedParams are the query parameters a storage URL may carry.
var acceptedParams = []string{"endpoint", "create"}

// The environment variables the driver reads.
const (
	envConnectionString = "AZURE_STORAGE_CONNECTION_STRING"
	envAccount          = "AZURE_STORAGE_ACCOUNT"
	envKey              = "AZURE_STORAGE_KEY"
)

// parseConfig reads azblob://CONTAINER[?endpoint=URL][&create=true] and the
// credentials from getenv: AZURE_STORAGE_CONNECTION_STRING, else
// AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY, else the default Azure
// credential chain for AZURE_STORAGE_ACCOUNT (or the endpoint).
func parseConfig(u *url.URL, getenv func(string) string) (config, error) {
	var c config
	if u.Scheme != "azblob" {
		return c, fmt.Errorf("storage URL %q: scheme %q, want azblob://CONTAINER", u.Redacted(), u.Scheme)
	}
	if u.User != nil {
		return c, errors.New("storage URL azblob://…: credentials do not belong in the URL; set AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY")
	}
	c.container = u.Host
	if err := checkContainer(c.container); err != nil {
		return c, fmt.Errorf("storage URL azblob://%s: %w", c.container, err)
	}
	if u.Path != "" && u.Path != "/" {
		return c, fmt.Errorf("storage URL azblob://%s%s: a path is not supported, the container is the whole storage", c.container, u.Path)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return c, fmt.Errorf("storage URL azblob://%s: query: %w", c.container, err)
	}
	for k, v := range q {
		if !slices.Contains(acceptedParams, k) {
			return c, fmt.Errorf("storage URL azblob://%s: unknown parameter %q (accepted: %s)", c.container, k, strings.Join(acceptedParams, ", "))
		}
		if len(v) != 1 {
			return c, fmt.Errorf("storage URL azblob://%s: parameter %q given %d times, want once", c.container, k, len(v))
		}
	}
	if s := q.Get("create"); s != "" {
		if c.create, err = strconv.ParseBool(s); err != nil {
			return c, fmt.Errorf("storage URL azblob://%s: create=%q, want true or false", c.container, s)
		}
	}
	if s := q.Get("endpoint"); s != "" {
		e, err := url.Parse(s)
		if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || e.User != nil || e.RawQuery != "" {
			return c, fmt.Errorf("storage URL azblob://%s: endpoint=%q, want the blob service URL, e.g. https://ACCOUNT.blob.core.windows.net or http://127.0.0.1:10000/devstoreaccount1 (no credentials, no query)", c.container, s)
		}
		c.endpoint = strings.TrimSuffix(e.String(), "/")
	}

	switch cs, account, key := getenv(envConnectionString), getenv(envAccount), getenv(envKey); {
	case cs != "":
		if err := c.fromConnectionString(cs); err != nil {
			return c, fmt.Errorf("%s: %w", envConnectionString, err)
		}
	case key != "":
		if account == "" {
			return c, fmt.Errorf("%s is set but %s is not; set both (or %s)", envKey, envAccount, envConnectionString)
		}
		c.cred, c.account, c.key = credSharedKey, account, key
	default:
		c.cred, c.account = credDefault, account
		if account == "" && c.endpoint == "" {
			return c, fmt.Errorf("storage URL azblob://%s: no storage account: set %s (with %s, or using the default Azure credential such as a managed identity), or %s, or ?endpoint=", c.container, envAccount, envKey, envConnectionString)
		}
	}
	switch {
	case c.endpoint != "":
		c.serviceURL = c.endpoint
	case c.serviceURL == "":
		c.serviceURL = "https://" + c.account + ".blob.core.windows.net"
	}
	return c, nil
}

// fromConnectionString takes the account, key or SAS and blob endpoint
// from an Azure Storage connection string.
func (c *config) fromConnectionString(cs string) error {
	kv := map[string]string{}
	for _, part := range strings.Split(cs, ";") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return fmt.Errorf("connection string: part %q is not KEY=VALUE", strings.SplitN(part, "=", 2)[0])
		}
		kv[strings.ToLower(k)] = v
	}
	if strings.EqualFold(kv["usedevelopmentstorage"], "true") {
		return errors.New("connection string: UseDevelopmentStorage=true is not supported; give AccountName, AccountKey and BlobEndpoint (or ?endpoint=)")
	}
	c.account = kv["accountname"]
	switch {
	case kv["accountkey"] != "":
		if c.account == "" {
			return errors.New("connection string: AccountKey without AccountName")
		}
		c.cred, c.key = credSharedKey, kv["accountkey"]
	case kv["sharedaccesssignature"] != "":
		c.cred, c.sas = credSAS, strings.TrimPrefix(kv["sharedaccesssignature"], "?")
	default:
		return errors.New("connection string: neither AccountKey nor SharedAccessSignature")
	}
	if e := kv["blobendpoint"]; e != "" {
		c.serviceURL = strings.TrimSuffix(e, "/")
		return nil
	}
	if c.account == "" {
		return errors.New("connection string: neither BlobEndpoint nor AccountName")
	}
	proto, suffix := kv["defaultendpointsprotocol"], kv["endpointsuffix"]
	if proto == "" {
		proto = "https"
	}
	if suffix == "" {
		suffix = "core.windows.net"
	}
	c.serviceURL = proto + "://" + c.account + ".blob." + suffix
	return nil
}

// checkContainer accepts Azure's container names: 3-63 lowercase letters,
// digits and single dashes, starting and ending with a letter or digit.
func checkContainer(name string) error {
	ok := len(name) >= 3 && len(name) <= 63 && name[0] != '-' && name[len(name)-1] != '-' && !strings.Contains(name, "--")
	for _, r := range name {
		ok = ok && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-')
	}
	if !ok {
		return fmt.Errorf("container name %q invalid: want 3-63 lowercase letters, digits and single dashes", name)
	}
	return nil
}

// String names the storage: azblob://CONTAINER, with the endpoint when one
// was given; never credentials.
func (c config) String() string {
	if c.endpoint != "" {
		return "azblob://" + c.container + "?endpoint=" + c.endpoint
	}
	return "azblob://" + c.container
}
