package policy

import (
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/ceskit/ceskit/policy/ciliumv2"
)

// Decode reads YAML or JSON (several documents, or a List) holding NetworkPolicies,
// CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies, and validates and translates each.
// It returns the first error, naming the document's policy and field; nothing is returned then,
// so a caller never applies half a file.
func Decode(data []byte) ([]*Policy, error) {
	objs, err := DecodeObjects(data)
	if err != nil {
		return nil, err
	}
	out := make([]*Policy, 0, len(objs))
	for i, o := range objs {
		var p *Policy
		var err error
		switch v := o.(type) {
		case *networkingv1.NetworkPolicy:
			p, err = FromNetworkPolicy(v)
		case *ciliumv2.CiliumNetworkPolicy:
			p, err = FromCiliumNetworkPolicy(v)
		case *ciliumv2.CiliumClusterwideNetworkPolicy:
			p, err = FromCiliumClusterwideNetworkPolicy(v)
		default:
			err = fmt.Errorf("%w: document %d: unsupported object %T", ErrInvalidPolicy, i, o)
		}
		if err != nil {
			return nil, fmt.Errorf("decode policies: document %d: %w", i, err)
		}
		out = append(out, p)
	}
	return out, nil
}
