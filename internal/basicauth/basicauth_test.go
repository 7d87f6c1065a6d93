package basicauth

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestValidateUsers(t *testing.T) {
	good, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	var got []string
	ValidateUsers([]User{
		{Name: "a", PasswordHash: string(good)},
		{Name: "a", PasswordHash: string(good)},
		{Name: "", PasswordHash: string(good)},
		{Name: "b:c", PasswordHash: "plain"},
	}, func(path, msg string) { got = append(got, path+": "+msg) })
	want := []string{"users[1].name: duplicate", "users[2].name: must be set", "users[3].name: must not contain ':'", "users[3].passwordHash: must be a bcrypt hash"}
	if len(got) != len(want) {
		t.Fatalf("ValidateUsers = %q, want %d problems", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
}

func TestChecker(t *testing.T) {
	h, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	c, err := NewChecker([]User{{Name: "ops", PasswordHash: string(h)}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, tt := range []struct {
		name       string
		user, pass string
		basic      bool
		want       Result
	}{
		{name: "no credentials", want: None},
		{name: "empty credentials", basic: true, want: None},
		{name: "right", user: "ops", pass: "s3cret", basic: true, want: OK},
		{name: "right again (cached)", user: "ops", pass: "s3cret", basic: true, want: OK},
		{name: "wrong password", user: "ops", pass: "nope", basic: true, want: Invalid},
		{name: "unknown user", user: "opz", pass: "s3cret", basic: true, want: Invalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.basic {
				r.SetBasicAuth(tt.user, tt.pass)
			}
			if _, got := c.Check(r, now); got != tt.want {
				t.Errorf("Check(%q, %q) = %v, want %v", tt.user, tt.pass, got, tt.want)
			}
		})
	}
}
