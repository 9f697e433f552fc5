package policy_test

import (
	"fmt"

	"github.com/fastsocks/fastsocks/policy"
)

func Example() {
	p := policy.MustNew(
		[]string{"github.com", "*.npmjs.org", "**.example.com"},
		[]string{"secret.example.com"},
	)
	for _, host := range []string{
		"GitHub.com:443",
		"registry.npmjs.org",
		"a.b.npmjs.org",
		"a.b.example.com",
		"secret.example.com",
	} {
		d := p.Decide(host)
		fmt.Printf("%-20s %-5v %-21s %s\n", host, d.Allowed, d.Reason(), d)
	}
	// Output:
	// GitHub.com:443       true  allowed               allow rule "github.com"
	// registry.npmjs.org   true  allowed               allow rule "*.npmjs.org"
	// a.b.npmjs.org        false blocked-by-allowlist  no allow rule matched
	// a.b.example.com      true  allowed               allow rule "**.example.com"
	// secret.example.com   false blocked-by-denylist   deny rule "secret.example.com"
}

func ExampleValidatePattern() {
	for _, s := range []string{"*.npmjs.org", "foo.*.com", "x.com:443"} {
		fmt.Println(policy.ValidatePattern(s))
	}
	// Output:
	// <nil>
	// policy: invalid pattern "foo.*.com": "*" may only be the whole leftmost label
	// policy: invalid pattern "x.com:443": a port is not allowed; patterns match the host on every port
}
