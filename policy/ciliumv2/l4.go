package ciliumv2

// L4Proto is a transport protocol name in a [PortProtocol].
//
// +kubebuilder:validation:Enum=TCP;UDP;SCTP;ICMP;ICMPv6;ANY
type L4Proto string

// The protocols a [PortProtocol] accepts. An empty protocol means ProtoAny.
const (
	ProtoTCP    L4Proto = "TCP"
	ProtoUDP    L4Proto = "UDP"
	ProtoSCTP   L4Proto = "SCTP"
	ProtoICMP   L4Proto = "ICMP"
	ProtoICMPv6 L4Proto = "ICMPv6"
	ProtoAny    L4Proto = "ANY"
)

// PortProtocol is a destination port or port range with a protocol.
type PortProtocol struct {
	// Port is a port number ("0" means all ports) or a named container port ("http").
	//
	// +kubebuilder:validation:Pattern=`^(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})|([a-zA-Z0-9]-?)*[a-zA-Z](-?[a-zA-Z0-9])*$`
	// +kubebuilder:validation:Required
	Port string `json:"port"`

	// EndPort, when set, makes Port..EndPort a range; Port must then be a number.
	//
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:validation:Optional
	EndPort int32 `json:"endPort,omitempty"`

	// Protocol is the transport protocol; empty or ANY means TCP, UDP and SCTP.
	//
	// +kubebuilder:validation:Optional
	Protocol L4Proto `json:"protocol,omitempty"`
}

// PortRule is a list of ports with optional L7 rules that traffic must also meet.
type PortRule struct {
	// Ports lists ports and protocols.
	//
	// +kubebuilder:validation:MaxItems=40
	// +kubebuilder:validation:Optional
	Ports []PortProtocol `json:"ports,omitempty"`

	// TerminatingTLS is the TLS context for connections the L7 proxy terminates.
	//
	// +kubebuilder:validation:Optional
	TerminatingTLS *TLSContext `json:"terminatingTLS,omitempty"`

	// OriginatingTLS is the TLS context for connections the L7 proxy originates.
	//
	// +kubebuilder:validation:Optional
	OriginatingTLS *TLSContext `json:"originatingTLS,omitempty"`

	// ServerNames lists allowed TLS SNI values; when set, TLS with one of them is required.
	//
	// +kubebuilder:validation:Optional
	ServerNames []string `json:"serverNames,omitempty"`

	// Listener redirects the traffic to a custom Envoy listener.
	//
	// +kubebuilder:validation:Optional
	Listener *Listener `json:"listener,omitempty"`

	// Rules are L7 rules the traffic must meet; none means L4 only.
	//
	// +kubebuilder:validation:Optional
	Rules *L7Rules `json:"rules,omitempty"`
}

// PortDenyRule is a list of ports for deny rules, which have no L7 rules.
type PortDenyRule struct {
	// Ports lists ports and protocols.
	//
	// +kubebuilder:validation:MaxItems=40
	// +kubebuilder:validation:Optional
	Ports []PortProtocol `json:"ports,omitempty"`
}

// L7Rules holds the L7 rules of one [PortRule]; at most one protocol is set.
type L7Rules struct {
	// HTTP lists HTTP rules.
	//
	// +kubebuilder:validation:Optional
	HTTP []PortRuleHTTP `json:"http,omitempty"`

	// Kafka lists Kafka rules.
	//
	// +kubebuilder:validation:Optional
	Kafka []PortRuleKafka `json:"kafka,omitempty"`

	// DNS lists the DNS names the DNS proxy lets through (egress only).
	//
	// +kubebuilder:validation:Optional
	DNS []PortRuleDNS `json:"dns,omitempty"`

	// L7Proto names a proxylib parser for the L7 rules.
	//
	// +kubebuilder:validation:Optional
	L7Proto string `json:"l7proto,omitempty"`

	// L7 lists key-value rules for L7Proto.
	//
	// +kubebuilder:validation:Optional
	L7 []PortRuleL7 `json:"l7,omitempty"`
}

// PortRuleHTTP is one HTTP rule; a request matches when every set field matches. Path, Method and
// Host are extended POSIX regular expressions.
type PortRuleHTTP struct {
	// Path matches the request path.
	//
	// +kubebuilder:validation:Optional
	Path string `json:"path,omitempty"`

	// Method matches the request method.
	//
	// +kubebuilder:validation:Optional
	Method string `json:"method,omitempty"`

	// Host matches the Host header.
	//
	// +kubebuilder:validation:Optional
	Host string `json:"host,omitempty"`

	// Headers lists headers ("Name" or "Name: value") the request must carry.
	//
	// +kubebuilder:validation:Optional
	Headers []string `json:"headers,omitempty"`

	// HeaderMatches lists header matches with an action on mismatch.
	//
	// +kubebuilder:validation:Optional
	HeaderMatches []HeaderMatch `json:"headerMatches,omitempty"`
}

// HeaderMatch matches a named header against a value or a secret.
type HeaderMatch struct {
	// Mismatch is what to do when the header does not match; empty drops the request.
	//
	// +kubebuilder:validation:Enum=LOG;ADD;DELETE;REPLACE
	// +kubebuilder:validation:Optional
	Mismatch string `json:"mismatch,omitempty"`

	// Name is the header's name.
	//
	// +kubebuilder:validation:Required
	Name string `json:"name"`

	// Secret holds the value to match.
	//
	// +kubebuilder:validation:Optional
	Secret *Secret `json:"secret,omitempty"`

	// Value is the exact value to match.
	//
	// +kubebuilder:validation:Optional
	Value string `json:"value,omitempty"`
}

// PortRuleKafka is one Kafka rule; a message matches when every set field matches.
type PortRuleKafka struct {
	// Role is "produce" or "consume", a shorthand for a set of API keys.
	//
	// +kubebuilder:validation:Enum=produce;consume
	// +kubebuilder:validation:Optional
	Role string `json:"role,omitempty"`

	// APIKey is a Kafka API key name, e.g. "produce" or "fetch".
	//
	// +kubebuilder:validation:Optional
	APIKey string `json:"apiKey,omitempty"`

	// APIVersion is the Kafka API version.
	//
	// +kubebuilder:validation:Optional
	APIVersion string `json:"apiVersion,omitempty"`

	// ClientID is the client identifier.
	//
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]*$`
	// +kubebuilder:validation:Optional
	ClientID string `json:"clientID,omitempty"`

	// Topic is the topic name.
	//
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]*$`
	// +kubebuilder:validation:Optional
	Topic string `json:"topic,omitempty"`
}

// PortRuleL7 is one key-value rule for a proxylib parser.
type PortRuleL7 map[string]string

// FQDNSelector selects DNS names: exactly one of MatchName and MatchPattern is set.
type FQDNSelector struct {
	// MatchName is a literal DNS name; a trailing "." is implied.
	//
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^([-a-zA-Z0-9_]+[.]?)+$`
	// +kubebuilder:validation:Optional
	MatchName string `json:"matchName,omitempty"`

	// MatchPattern is a case-insensitive pattern: "*" matches zero or more DNS characters within a
	// label, "*" alone matches every name, a leading "**." any depth of subdomains.
	//
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^([-a-zA-Z0-9_*]+[.]?)+$`
	// +kubebuilder:validation:Optional
	MatchPattern string `json:"matchPattern,omitempty"`
}

// PortRuleDNS is one DNS rule: the names the DNS proxy lets the endpoint look up.
type PortRuleDNS FQDNSelector

// TLSContext is a TLS configuration read from a Kubernetes secret.
type TLSContext struct {
	// Secret holds the certificates and key.
	//
	// +kubebuilder:validation:Required
	Secret *Secret `json:"secret"`

	// TrustedCA is the secret item with the trusted CA; default "ca.crt".
	//
	// +kubebuilder:validation:Optional
	TrustedCA string `json:"trustedCA,omitempty"`

	// Certificate is the secret item with the certificate chain; default "tls.crt".
	//
	// +kubebuilder:validation:Optional
	Certificate string `json:"certificate,omitempty"`

	// PrivateKey is the secret item with the private key; default "tls.key".
	//
	// +kubebuilder:validation:Optional
	PrivateKey string `json:"privateKey,omitempty"`
}

// Secret references a Kubernetes secret.
type Secret struct {
	// Namespace is the secret's namespace; its default depends on where it is used.
	//
	// +kubebuilder:validation:Optional
	Namespace string `json:"namespace,omitempty"`

	// Name is the secret's name.
	//
	// +kubebuilder:validation:Required
	Name string `json:"name"`
}

// Listener references an Envoy listener defined in a CiliumEnvoyConfig.
type Listener struct {
	// EnvoyConfig is the resource defining the listener.
	//
	// +kubebuilder:validation:Required
	EnvoyConfig *EnvoyConfig `json:"envoyConfig"`

	// Name is the listener's name.
	//
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:Required
	Name string `json:"name"`

	// Priority orders listeners when several rules apply to one port (1–100).
	//
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:validation:Optional
	Priority uint16 `json:"priority,omitempty"`
}

// EnvoyConfig references a CiliumEnvoyConfig or CiliumClusterwideEnvoyConfig.
type EnvoyConfig struct {
	// Kind is CiliumEnvoyConfig or CiliumClusterwideEnvoyConfig; the default follows the policy's
	// scope.
	//
	// +kubebuilder:validation:Enum=CiliumEnvoyConfig;CiliumClusterwideEnvoyConfig
	// +kubebuilder:validation:Optional
	Kind string `json:"kind,omitempty"`

	// Name is the resource's name.
	//
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:Required
	Name string `json:"name"`
}
