package tunnel

import (
	"errors"
	"fmt"

	"github.com/portcullis-dev/portcullis/internal/policy"
)

// names says a Config's settings in the language of its source: the
// tunnels.yaml key ("identity.cacert") or the flag ("--cacert"), so that an
// error names what the user typed.
type names struct{ flags bool }

// flagNames are the flags of the tunnels.yaml keys (paths within a
// service, or top-level keys) that have one.
var flagNames = map[string]string{
	"status":                  "--status",
	"listen":                  "--listen",
	"targets":                 "--target",
	"target":                  "--target",
	"failover":                "--failover",
	"identity.cacert":         "--cacert",
	"max_concurrent_conns":    "--max-concurrent-conns",
	"curves":                  "--curves",
	"revocation.mode":         "--revocation",
	"unsafe_target":           "--unsafe-target",
	"unsafe_listen":           "--unsafe-listen",
	"allow.allow_all":         "--allow-all",
	"allow.cn":                "--allow-cn",
	"allow.ou":                "--allow-ou",
	"allow.dns":               "--allow-dns",
	"allow.ip":                "--allow-ip",
	"allow.uri":               "--allow-uri",
	"verify.cn":               "--verify-cn",
	"verify.ou":               "--verify-ou",
	"verify.dns":              "--verify-dns",
	"verify.ip":               "--verify-ip",
	"verify.uri":              "--verify-uri",
	"identity.storepass_file": "--storepass-file",
}

// key is the YAML key k, or its flag when the config came from flags.
func (n names) key(k string) string {
	if f, ok := flagNames[k]; ok && n.flags {
		return f
	}
	return k
}

// say picks the message written for the source.
func (n names) say(yaml, flags string) string {
	if n.flags {
		return flags
	}
	return yaml
}

// enable tells how to turn a boolean setting on.
func (n names) enable(k string) string {
	return n.say("set "+k+": true", "add "+n.key(k))
}

// policy compiles the allow (server) or verify (client) rules under key,
// with every problem said in the source's terms.
func (n names) policy(r policy.Rules, key string) (*policy.Policy, []error) {
	var errs []error
	// policy.Compile reports these two in YAML terms: say them here.
	switch count := ruleCount(r); {
	case count == 0 && !r.AllowAll:
		errs = append(errs, errors.New(n.say(
			key+": no access rule: set allow_all: true or at least one rule (cn, ou, dns, ip, uri, email, spki_sha256, issuer)",
			"no access rule: give --allow-all or at least one of --allow-cn, --allow-ou, --allow-dns, --allow-ip, --allow-uri")))
	case count > 0 && r.AllowAll:
		errs = append(errs, errors.New(n.say(
			key+": allow_all cannot be combined with other rules",
			"--allow-all cannot be combined with other --allow-* flags")))
	}
	p, err := policy.Compile(r)
	if err == nil {
		return p, errs
	}
	counted := len(errs) > 0
	for _, e := range leaves(err) {
		var ee *policy.EntryError
		switch {
		case errors.As(e, &ee) && n.flags:
			errs = append(errs, fmt.Errorf("%s %q: %w", n.key(key+"."+ee.Kind), ee.Value, ee.Err))
		case errors.As(e, &ee):
			errs = append(errs, fmt.Errorf("%s: %w", key, e))
		case !counted:
			// A problem of the rules as a whole this function does not
			// know how to say: as policy says it.
			errs = append(errs, fmt.Errorf("%s: %w", key, e))
		}
	}
	return nil, errs
}

// leaves lists the errors an errors.Join holds, or err alone.
func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func (s Source) String() string {
	if s == SourceFlags {
		return "flags"
	}
	return "tunnels.yaml"
}
