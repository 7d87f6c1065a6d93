package upstream

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// checkRealm applies the token realm rules (the realm's address is
// checked when it is dialled, like every connection):
//   - an https endpoint's realm is https: no downgrade, with or without
//     credentials, since a token fetched in the clear protects nothing;
//   - credentials go to a realm only when the challenge naming it can be
//     believed: it came from the endpoint itself (send answers no other
//     challenge) over https, or, for a plain-http endpoint the operator
//     configured, the realm is on that endpoint's own host, the one the
//     operator already sends them to in the clear.
func checkRealm(realm, endpoint *url.URL, withCredentials bool) error {
	if endpoint.Scheme == "https" && realm.Scheme != "https" {
		return fmt.Errorf("refusing a plain-http token realm (%s) for an https registry", realm.Host)
	}
	if withCredentials && endpoint.Scheme != "https" && !strings.EqualFold(realm.Hostname(), endpoint.Hostname()) {
		return fmt.Errorf("refusing to send credentials to token realm host %s: the challenge came over plain http from %s", realm.Hostname(), endpoint.Host)
	}
	return nil
}

// parseTokenResponse reads a token server's answer (distribution token
// spec): a JSON object whose "token" or, failing that, "access_token"
// member is the token, with an optional "expires_in" in whole seconds.
// Member names are matched exactly: encoding/json alone matches them in
// any letter case, and would take {"Token": …} (the shape of cloud
// metadata credentials) for a token and send it upstream.
func parseTokenResponse(body []byte) (token string, expiresIn int64, err error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return "", 0, fmt.Errorf("token response is not a JSON object: %w", err)
	}
	for _, k := range []string{"token", "access_token"} {
		raw, ok := m[k]
		if !ok {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", 0, fmt.Errorf("token response field %q is not a string", k)
		}
		if s != "" {
			token = s
			break
		}
	}
	if token == "" {
		return "", 0, errors.New("token response has no \"token\" or \"access_token\" string")
	}
	if !headerSafe(token) {
		return "", 0, errors.New("token response holds a token that cannot be sent in a header")
	}
	if raw, ok := m["expires_in"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &expiresIn); err != nil {
			return "", 0, errors.New("token response field \"expires_in\" is not a whole number of seconds")
		}
	}
	return token, expiresIn, nil
}
