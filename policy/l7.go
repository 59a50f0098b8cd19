package policy

import (
	"errors"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// HTTPRule is an L7 HTTP rule, as in a CiliumNetworkPolicy's toPorts[].rules.http[]. A request
// is allowed when it matches every field that is set; the zero HTTPRule allows every request.
//
// Method, Path and Host are regular expressions in Go's RE2 syntax ([regexp/syntax]), matched
// against the whole value. Cilium documents them as extended POSIX regular expressions and
// hands them to Envoy, whose safe_regex is RE2 as well; RE2 is our choice because it is what
// the enforcement side runs and it guarantees linear-time matching. The common subset
// (literals, ".", "*", "+", "?", "|", "()", "[]", "{m,n}", "^", "$") reads the same in both;
// POSIX back-references and POSIX leftmost-longest submatch rules are not supported.
type HTTPRule struct {
	// Method is a regular expression for the request method, e.g. "GET" or "GET|HEAD".
	Method string
	// Path is a regular expression for the request path as the proxy sees it (Envoy's
	// :path), e.g. "/public/.*".
	Path string
	// Host is a regular expression for the request host (the Host header or :authority).
	Host string
	// Headers are headers that must be present: "Name" requires the header, "Name: value"
	// requires it with that exact value. Names are RFC 7230 tokens compared
	// case-insensitively; pseudo-headers (":authority") cannot be named here.
	Headers []string
}

// ValidateHTTPRule checks r and returns one error per bad field, each with its path under
// path: method, path and host must compile as RE2 regular expressions; every headers[i]
// entry must be "Name" or "Name: value" with a token name and a value free of control
// characters. path may be nil.
func ValidateHTTPRule(r HTTPRule, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, re := range []struct{ name, value string }{
		{"method", r.Method}, {"path", r.Path}, {"host", r.Host},
	} {
		if re.value == "" {
			continue
		}
		if _, err := regexp.Compile(re.value); err != nil {
			errs = append(errs, field.Invalid(path.Child(re.name), re.value,
				"must be a valid RE2 regular expression: "+regexpErrorReason(err)))
		}
	}
	for i, h := range r.Headers {
		p := path.Child("headers").Index(i)
		if h == "" {
			errs = append(errs, field.Required(p, `must be "Name" or "Name: value"`))
			continue
		}
		name, value, hasValue := strings.Cut(h, ":")
		switch {
		case name == "" && hasValue:
			errs = append(errs, field.Invalid(p, h, "header name is empty; pseudo-headers such as \":authority\" cannot be matched here"))
		case !isHTTPToken(name):
			reason := "header name " + strconv.Quote(name) + " is not an RFC 7230 token (letters, digits and !#$%&'*+-.^_`|~)"
			if !hasValue && strings.ContainsAny(name, " \t") {
				reason += `; write "Name: value" to require a value`
			}
			errs = append(errs, field.Invalid(p, h, reason))
		case hasValue && !isHTTPFieldValue(strings.TrimLeft(value, " \t")):
			errs = append(errs, field.Invalid(p, h, "header value must not contain control characters other than horizontal tab"))
		}
	}
	return errs
}

// ValidateDNSRule checks a DNS L7 rule (toPorts[].rules.dns[], which selects the names a DNS
// proxy lets the endpoint resolve) with [CompileFQDNSelector]'s rules. The error is reported
// at path.matchName or path.matchPattern, or at path itself when neither or both are set.
// path may be nil.
func ValidateDNSRule(s FQDNSelector, path *field.Path) field.ErrorList {
	_, err := CompileFQDNSelector(s)
	if err == nil {
		return nil
	}
	var fe *fqdnSelectorError
	if !errors.As(err, &fe) {
		return field.ErrorList{field.InternalError(path, err)}
	}
	if fe.field == "" {
		return field.ErrorList{field.Required(path, fe.reason)}
	}
	return field.ErrorList{field.Invalid(path.Child(fe.field), fe.value, fe.reason)}
}

// regexpErrorReason keeps the useful part of a regexp error: "missing closing ): `(a`"
// instead of "error parsing regexp: missing closing ): `(a`".
func regexpErrorReason(err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		return se.Code.String() + ": `" + se.Expr + "`"
	}
	return err.Error()
}

// isHTTPToken reports whether s is an RFC 7230 token: 1*tchar.
func isHTTPToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// isHTTPFieldValue reports whether s is an RFC 7230 field-value: VCHAR, obs-text, SP and HTAB.
func isHTTPFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
