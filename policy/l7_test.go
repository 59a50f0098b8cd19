package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// l7FieldErr is the part of a *field.Error a test pins down; Detail is matched as a substring.
type l7FieldErr struct {
	Type   field.ErrorType
	Field  string
	Value  any
	Detail string
}

func l7ProjectFieldErrors(t *testing.T, errs field.ErrorList, want []l7FieldErr) []l7FieldErr {
	t.Helper()
	var got []l7FieldErr
	for i, e := range errs {
		g := l7FieldErr{Type: e.Type, Field: e.Field, Value: e.BadValue}
		if i < len(want) && strings.Contains(e.Detail, want[i].Detail) {
			g.Detail = want[i].Detail
		} else {
			g.Detail = e.Detail
		}
		got = append(got, g)
	}
	return got
}

func TestValidateHTTPRule(t *testing.T) {
	base := field.NewPath("spec", "egress").Index(0).Child("toPorts").Index(1).Child("rules", "http").Index(2)
	const p = "spec.egress[0].toPorts[1].rules.http[2]"
	for _, tc := range []struct {
		name string
		rule HTTPRule
		want []l7FieldErr
	}{
		{name: "empty rule allows everything", rule: HTTPRule{}},
		{name: "valid", rule: HTTPRule{
			Method: "GET|HEAD", Path: "/public/.*", Host: `(www\.)?example\.com`,
			Headers: []string{"X-My-Header", "X-Token: abc", "X-Empty:", "Accept:\ttext/html; q=0.9", "X-Obs: caf\xc3\xa9", "x~!#$%&'*+-.^_`|: 1"},
		}},
		{name: "posix class is fine in RE2", rule: HTTPRule{Path: "/[[:alnum:]]+"}},
		{name: "bad method", rule: HTTPRule{Method: "GET("}, want: []l7FieldErr{
			{field.ErrorTypeInvalid, p + ".method", "GET(", "must be a valid RE2 regular expression: missing closing ): `GET(`"},
		}},
		{name: "bad path", rule: HTTPRule{Path: "/foo/*["}, want: []l7FieldErr{
			{field.ErrorTypeInvalid, p + ".path", "/foo/*[", "missing closing ]: `[`"},
		}},
		{name: "back-reference is not RE2", rule: HTTPRule{Path: `/(a)\1`}, want: []l7FieldErr{
			{field.ErrorTypeInvalid, p + ".path", `/(a)\1`, "invalid escape sequence"},
		}},
		{name: "lookahead is not RE2", rule: HTTPRule{Host: `(?=x)example\.com`}, want: []l7FieldErr{
			{field.ErrorTypeInvalid, p + ".host", `(?=x)example\.com`, "invalid or unsupported Perl syntax"},
		}},
		{name: "bad repetition", rule: HTTPRule{Host: "*.example.com"}, want: []l7FieldErr{
			{field.ErrorTypeInvalid, p + ".host", "*.example.com", "missing argument to repetition operator"},
		}},
		{name: "all three and headers, in field order", rule: HTTPRule{
			Method: "(", Path: ")", Host: "[",
			Headers: []string{"", "X Space", "X-Ok", ":authority: example.com", "X-Bad\x00: v", "X-CRLF: a\r\nInjected: b", "Näme: v"},
		}, want: []l7FieldErr{
			{field.ErrorTypeInvalid, p + ".method", "(", "missing closing )"},
			{field.ErrorTypeInvalid, p + ".path", ")", "unexpected )"},
			{field.ErrorTypeInvalid, p + ".host", "[", "missing closing ]"},
			{field.ErrorTypeRequired, p + ".headers[0]", "", `must be "Name" or "Name: value"`},
			{field.ErrorTypeInvalid, p + ".headers[1]", "X Space", `header name "X Space" is not an RFC 7230 token (letters, digits and !#$%&'*+-.^_` + "`|~); write \"Name: value\" to require a value"},
			{field.ErrorTypeInvalid, p + ".headers[3]", ":authority: example.com", "header name is empty; pseudo-headers"},
			{field.ErrorTypeInvalid, p + ".headers[4]", "X-Bad\x00: v", `header name "X-Bad\x00" is not an RFC 7230 token`},
			{field.ErrorTypeInvalid, p + ".headers[5]", "X-CRLF: a\r\nInjected: b", "header value must not contain control characters"},
			{field.ErrorTypeInvalid, p + ".headers[6]", "Näme: v", `header name "Näme" is not an RFC 7230 token`},
		}},
		{name: "space before colon", rule: HTTPRule{Headers: []string{"X-Key : v"}}, want: []l7FieldErr{
			{field.ErrorTypeInvalid, p + ".headers[0]", "X-Key : v", `header name "X-Key " is not an RFC 7230 token`},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidateHTTPRule(tc.rule, base)
			if diff := cmp.Diff(tc.want, l7ProjectFieldErrors(t, errs, tc.want)); diff != "" {
				t.Errorf("ValidateHTTPRule(%+v) (-want +got):\n%s\nall: %v", tc.rule, diff, errs.ToAggregate())
			}
		})
	}
}

func TestValidateHTTPRuleNilPath(t *testing.T) {
	errs := ValidateHTTPRule(HTTPRule{Method: "("}, nil)
	if len(errs) != 1 || errs[0].Field != "method" {
		t.Fatalf("ValidateHTTPRule with nil path = %v, want one error at method", errs)
	}
}

func TestValidateDNSRule(t *testing.T) {
	base := field.NewPath("spec", "egress").Index(0).Child("toPorts").Index(0).Child("rules", "dns").Index(3)
	const p = "spec.egress[0].toPorts[0].rules.dns[3]"
	for _, tc := range []struct {
		name string
		sel  FQDNSelector
		want []l7FieldErr
	}{
		{name: "name", sel: FQDNSelector{MatchName: "kubernetes.default.svc.cluster.local"}},
		{name: "pattern", sel: FQDNSelector{MatchPattern: "*"}},
		{name: "any depth", sel: FQDNSelector{MatchPattern: "**.example.com"}},
		{name: "neither", sel: FQDNSelector{}, want: []l7FieldErr{
			{field.ErrorTypeRequired, p, "", "one of matchName or matchPattern is required"},
		}},
		{name: "both", sel: FQDNSelector{MatchName: "a.io", MatchPattern: "*.io"}, want: []l7FieldErr{
			{field.ErrorTypeInvalid, p + ".matchPattern", "*.io", `may not be set together with matchName "a.io"`},
		}},
		{name: "bad name", sel: FQDNSelector{MatchName: "a/b.io"}, want: []l7FieldErr{
			{field.ErrorTypeInvalid, p + ".matchName", "a/b.io", "invalid character '/' at offset 1"},
		}},
		{name: "bad pattern", sel: FQDNSelector{MatchPattern: "a**b"}, want: []l7FieldErr{
			{field.ErrorTypeInvalid, p + ".matchPattern", "a**b", `"**" at offset 1`},
		}},
		{name: "empty label", sel: FQDNSelector{MatchPattern: "*..io"}, want: []l7FieldErr{
			{field.ErrorTypeInvalid, p + ".matchPattern", "*..io", `empty label ("..")`},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidateDNSRule(tc.sel, base)
			if diff := cmp.Diff(tc.want, l7ProjectFieldErrors(t, errs, tc.want)); diff != "" {
				t.Errorf("ValidateDNSRule(%+v) (-want +got):\n%s\nall: %v", tc.sel, diff, errs.ToAggregate())
			}
		})
	}
}
