package identity

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Names of the annotations and labels the allocator and the garbage collector use.
const (
	// HeartbeatAnnotation marks an identity the garbage collector found unused, with the RFC 3339
	// time of the mark. It is Cilium's io.cilium.heartbeat, so Cilium's operator and ceskit read
	// each other's marks. An allocator that reuses a marked identity removes it.
	HeartbeatAnnotation = "io.cilium.heartbeat"

	// LeaseKindLabel tells ceskit's identity Leases apart: "claim" or "holder".
	LeaseKindLabel = "identity.ceskit.io/kind"
	// ClaimIDLabel is the numeric identity a claim Lease points at.
	ClaimIDLabel = "identity.ceskit.io/id"
	// ClaimKeyAnnotation holds the full label key ([Labels.Key]) of a claim Lease.
	ClaimKeyAnnotation = "identity.ceskit.io/key"
	// HolderIDsAnnotation holds the identities of a holder record, as ranges ("256-300,412") or,
	// when shorter, as "b64:" and a base64 bitmap.
	HolderIDsAnnotation = "identity.ceskit.io/ids"

	leaseKindClaim  = "claim"
	leaseKindHolder = "holder"
)

// ClaimName is the name of the claim Lease of a label key: "cid-claim-" and the hex SHA-256 of
// the key. Its creation is the protocol's unique index (see the package documentation).
func ClaimName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "cid-claim-" + hex.EncodeToString(sum[:])
}

// HolderName is the name of the holder-record Lease of an allocator.
func HolderName(holder string) string { return "cid-holder-" + holder }

// claim is a decoded claim Lease.
type claim struct {
	key   string
	id    NumericIdentity
	lease *coordinationv1.Lease
}

func newClaimLease(namespace, key string, id NumericIdentity, holder string, now time.Time) *coordinationv1.Lease {
	t := metav1.NewMicroTime(now)
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name:        ClaimName(key),
			Namespace:   namespace,
			Labels:      map[string]string{LeaseKindLabel: leaseKindClaim, ClaimIDLabel: id.String()},
			Annotations: map[string]string{ClaimKeyAnnotation: key},
		},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, AcquireTime: &t, RenewTime: &t},
	}
}

func claimFromLease(l *coordinationv1.Lease) (claim, error) {
	key, ok := l.Annotations[ClaimKeyAnnotation]
	if !ok {
		return claim{}, fmt.Errorf("claim lease %s/%s: no %s annotation", l.Namespace, l.Name, ClaimKeyAnnotation)
	}
	id, err := ParseNumericIdentity(l.Labels[ClaimIDLabel])
	if err != nil {
		return claim{}, fmt.Errorf("claim lease %s/%s: label %s: %w", l.Namespace, l.Name, ClaimIDLabel, err)
	}
	return claim{key: key, id: id, lease: l}, nil
}

// encodeIDs writes a sorted, duplicate-free set of identities compactly.
func encodeIDs(ids []NumericIdentity) string {
	if len(ids) == 0 {
		return ""
	}
	var b strings.Builder
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(ids[i]), 10))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.FormatUint(uint64(ids[j]), 10))
		}
		i = j + 1
	}
	ranges := b.String()
	lo, hi := ids[0], ids[len(ids)-1]
	bitmapLen := 4 + 4*((int(hi-lo)/8+1+2)/3)
	if bitmapLen >= len(ranges) {
		return ranges
	}
	bm := make([]byte, 4+int(hi-lo)/8+1)
	binary.BigEndian.PutUint32(bm, uint32(lo))
	for _, id := range ids {
		off := int(id - lo)
		bm[4+off/8] |= 1 << (off % 8)
	}
	return "b64:" + base64.StdEncoding.EncodeToString(bm)
}

// decodeIDs reads what encodeIDs wrote.
func decodeIDs(s string) ([]NumericIdentity, error) {
	if s == "" {
		return nil, nil
	}
	var out []NumericIdentity
	if rest, ok := strings.CutPrefix(s, "b64:"); ok {
		bm, err := base64.StdEncoding.DecodeString(rest)
		if err != nil || len(bm) < 4 {
			return nil, fmt.Errorf("decode identity bitmap: bad encoding")
		}
		lo := NumericIdentity(binary.BigEndian.Uint32(bm))
		for i, b := range bm[4:] {
			for bit := range 8 {
				if b&(1<<bit) != 0 {
					out = append(out, lo+NumericIdentity(i*8+bit))
				}
			}
		}
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		from, to, isRange := strings.Cut(part, "-")
		lo, err := ParseNumericIdentity(from)
		if err != nil {
			return nil, fmt.Errorf("decode identity set: %w", err)
		}
		hi := lo
		if isRange {
			if hi, err = ParseNumericIdentity(to); err != nil {
				return nil, fmt.Errorf("decode identity set: %w", err)
			}
			if hi < lo || hi-lo > 1<<24 {
				return nil, fmt.Errorf("decode identity set: bad range %q", part)
			}
		}
		for id := lo; ; id++ {
			out = append(out, id)
			if id == hi {
				break
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
