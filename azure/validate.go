package azure

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v8"
)

// Problem is one thing wrong with a spec or a transition.
type Problem struct {
	// Field is the JSON path of the offending ClusterSpec field, e.g. "network.podCidr" or
	// "pools[1].maxPods".
	Field string `json:"field"`
	// Value is the offending value as text.
	Value string `json:"value"`
	// Code is AKS's (or the network RP's) error code or subcode where it is known, otherwise a
	// ceskit code in the same style; see the Code… constants.
	Code string `json:"code"`
	// Message says what is wrong and how to fix it.
	Message string `json:"message"`
}

// String formats p as `field="value": Code: message`.
func (p Problem) String() string {
	return fmt.Sprintf("%s=%q: %s: %s", p.Field, p.Value, p.Code, p.Message)
}

// ValidationError is every problem [Validate] or [ValidateUpdate] found, reported together. Get
// it with errors.As.
type ValidationError struct {
	Problems []Problem `json:"problems"`
}

// Error lists every problem, one a line after the first.
func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid cluster spec: " + e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid cluster spec: %d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n\t")
		b.WriteString(p.String())
	}
	return b.String()
}

// Codes that are AKS's own (from RP error responses seen in the wild) or the network RP's.
const (
	// CodeCiliumDataplaneRequiresNetworkPolicyCilium: the Cilium dataplane with a network policy
	// other than cilium (AKS subcode, target networkProfile.networkPolicy).
	CodeCiliumDataplaneRequiresNetworkPolicyCilium = "CiliumDataplaneRequiresNetworkPolicyCilium"
	// CodeNetworkPolicyCiliumRequiresCiliumDataplane: network policy cilium without the Cilium
	// dataplane (AKS subcode of NetworkPolicyNotSupported).
	CodeNetworkPolicyCiliumRequiresCiliumDataplane = "NetworkPolicyCiliumRequiresCiliumDataplane"
	// CodeServiceCidrOverlapExistingSubnetsCidr: the service CIDR overlaps a subnet of the VNet
	// (AKS, target networkProfile.serviceCIDR).
	CodeServiceCidrOverlapExistingSubnetsCidr = "ServiceCidrOverlapExistingSubnetsCidr"
	// CodeNetworkProfileCIDROverlapVNET: the pod or service CIDR overlaps the VNet's address
	// space (AKS, target networkProfile.podCIDR).
	CodeNetworkProfileCIDROverlapVNET = "NetworkProfileCIDROverlapVNET"
	// CodeMustDefineAtLeastOneSystemPool: no pool has mode System (AKS).
	CodeMustDefineAtLeastOneSystemPool = "MustDefineAtLeastOneSystemPool"
	// CodeWindowsAgentPoolNameTooLong: a Windows pool name longer than 6 characters (AKS).
	CodeWindowsAgentPoolNameTooLong = "WindowsAgentPoolNameTooLong"
	// CodeNetcfgSubnetRangeOutsideVnet: a VNet subnet outside the VNet's address space
	// (Microsoft.Network).
	CodeNetcfgSubnetRangeOutsideVnet = "NetcfgSubnetRangeOutsideVnet"
	// CodeNetcfgSubnetRangesOverlap: two VNet subnets overlap (Microsoft.Network).
	CodeNetcfgSubnetRangesOverlap = "NetcfgSubnetRangesOverlap"
)

// ceskit's codes, where AKS's code is unknown or generic (InvalidParameter, BadRequest).
const (
	CodeInvalidSubscriptionID    = "InvalidSubscriptionID"    // not a GUID
	CodeInvalidResourceGroupName = "InvalidResourceGroupName" // 1–90 letters, digits, _-.(), not ending in "."
	CodeInvalidClusterName       = "InvalidClusterName"       // 1–63 alphanumerics, _ and -, alphanumeric at both ends
	CodeInvalidLocation          = "InvalidLocation"          // a region's short name, e.g. eastus2
	CodeInvalidKubernetesVersion = "InvalidKubernetesVersion" // not "1.33" or "1.33.2"
	CodeInvalidDNSPrefix         = "InvalidDNSPrefix"         // 1–54 alphanumerics and -, alphanumeric at both ends
	CodeInvalidIdentity          = "InvalidIdentity"          // neither SystemAssigned nor a user-assigned identity ID
	CodeInvalidWorkspaceID       = "InvalidWorkspaceID"       // not a Log Analytics workspace ID
	CodeInvalidAPIVersion        = "InvalidAPIVersion"        // not YYYY-MM-DD[-preview]
	CodeUnsupportedAPIVersion    = "UnsupportedAPIVersion"    // a feature the api-version predates

	CodeInvalidNetworkModel            = "InvalidNetworkModel"     // not overlay, podsubnet, nodesubnet
	CodeKubenetNotSupported            = "KubenetNotSupported"     // kubenet as a desired state
	CodeInvalidNetworkDataplane        = "InvalidNetworkDataplane" // not azure or cilium
	CodeInvalidNetworkPolicy           = "InvalidNetworkPolicy"    // not none, azure, calico, cilium
	CodeInvalidOutboundType            = "InvalidOutboundType"     // not one of AKS's outbound types
	CodeInvalidCidr                    = "InvalidCidr"             // unparseable, not IPv4, or not a network address
	CodeCidrInReservedRange            = "CidrInReservedRange"     // 169.254/16, 172.30/16, 172.31/16, 192.0.2/24
	CodePodCidrRequired                = "PodCidrRequired"         // overlay without a pod CIDR
	CodePodCidrNotAllowed              = "PodCidrNotAllowed"       // a pod CIDR with Azure CNI outside overlay
	CodePodCidrOverlapsServiceCidr     = "PodCidrOverlapsServiceCidr"
	CodePodCidrTooSmall                = "PodCidrTooSmall"                // fewer /24 node blocks than nodes (overlay)
	CodeInvalidDNSServiceIP            = "InvalidDNSServiceIP"            // unparseable
	CodeDNSServiceIPOutsideServiceCidr = "DNSServiceIPOutsideServiceCidr" // not inside the service CIDR
	CodeDNSServiceIPReserved           = "DNSServiceIPReserved"           // network, first (kubernetes service) or broadcast address

	CodePodSubnetNotAllowed     = "PodSubnetNotAllowed"     // a pod subnet outside the pod-subnet model
	CodeSubnetRequired          = "SubnetRequired"          // a subnet the model needs is missing
	CodeInvalidSubnetID         = "InvalidSubnetID"         // not a Microsoft.Network/virtualNetworks/subnets ID
	CodeSubnetsInDifferentVNets = "SubnetsInDifferentVNets" // node and pod subnets of one cluster span VNets
	CodePodSubnetIsNodeSubnet   = "PodSubnetIsNodeSubnet"   // the pod subnet is the node subnet
	CodeSubnetNotInVNet         = "SubnetNotInVNet"         // a pool names a subnet the spec's VNet lacks
	CodeInvalidVNet             = "InvalidVNet"             // VNet name, address space or subnet syntax
	CodeDuplicateSubnetName     = "DuplicateSubnetName"

	CodeTooManyAgentPools             = "TooManyAgentPools" // more than 100
	CodeInvalidAgentPoolName          = "InvalidAgentPoolName"
	CodeDuplicateAgentPoolName        = "DuplicateAgentPoolName"
	CodeInvalidAgentPoolMode          = "InvalidAgentPoolMode"  // not System or User
	CodeInvalidAgentPoolCount         = "InvalidAgentPoolCount" // System 1–1000, User 0–1000
	CodeMissingVMSize                 = "MissingVMSize"
	CodeInvalidOSType                 = "InvalidOSType" // not Linux or Windows
	CodeInvalidOSSKU                  = "InvalidOSSKU"  // unknown, or not of the pool's OS type
	CodeSystemPoolMustBeLinux         = "SystemPoolMustBeLinux"
	CodeWindowsNotSupportedWithCilium = "WindowsNotSupportedWithCilium"
	CodeInvalidMaxPods                = "InvalidMaxPods" // outside 10–250
	CodeInvalidOrchestratorVersion    = "InvalidOrchestratorVersion"

	CodeACNSRequiresCilium                       = "ACNSRequiresCilium"
	CodeACNSRequiresKubernetes129                = "ACNSRequiresKubernetes129"
	CodeACNSNoFeatureEnabled                     = "ACNSNoFeatureEnabled"
	CodeInvalidAdvancedNetworkPolicies           = "InvalidAdvancedNetworkPolicies"
	CodeAdvancedNetworkPoliciesRequireSecurity   = "AdvancedNetworkPoliciesRequireSecurity"
	CodeContainerNetworkLogsRequireObservability = "ContainerNetworkLogsRequireObservability"
	CodeContainerNetworkLogsRequireMonitoring    = "ContainerNetworkLogsRequireMonitoring"
	CodeContainerNetworkLogsRequireKubernetes133 = "ContainerNetworkLogsRequireKubernetes133"
	CodeCiliumEndpointSlicesRequireCilium        = "CiliumEndpointSlicesRequireCilium"
	CodeCiliumEndpointSlicesRequireKubernetes132 = "CiliumEndpointSlicesRequireKubernetes132"
)

// ceskit's codes for transitions ([ValidateUpdate]).
const (
	CodeClusterMismatch                              = "ClusterMismatch"   // the spec names another cluster than current
	CodeLocationImmutable                            = "LocationImmutable" // a cluster cannot move
	CodeDNSPrefixImmutable                           = "DNSPrefixImmutable"
	CodeIdentityChangeNotSupported                   = "IdentityChangeNotSupported" // ceskit does not plan identity changes
	CodeKubernetesVersionDowngrade                   = "KubernetesVersionDowngrade"
	CodeKubernetesUpgradeSkipsMinor                  = "KubernetesUpgradeSkipsMinor"
	CodeCiliumDataplaneCannotBeDisabled              = "CiliumDataplaneCannotBeDisabled" // Cilium → azure: recreate
	CodeNetworkModelChangeNotSupported               = "NetworkModelChangeNotSupported"  // only kubenet/node subnet → overlay
	CodeOverlayMigrationRequiresKubernetes127        = "OverlayMigrationRequiresKubernetes127"
	CodeKubenetMigrationRequiresUserAssignedIdentity = "KubenetMigrationRequiresUserAssignedIdentity"
	CodeOverlayMigrationWithNetworkPolicy            = "OverlayMigrationWithNetworkPolicy" // keeping NPM/Calico through overlay
	CodeNetworkPolicyChangeNotSupported              = "NetworkPolicyChangeNotSupported"
	CodeNodeAutoProvisioningNotSupported             = "NodeAutoProvisioningNotSupported" // NAP on during a network migration
	CodeMaxPodsImmutable                             = "MaxPodsImmutable"
	CodeSubnetImmutable                              = "SubnetImmutable"
	CodeAgentPoolPropertyImmutable                   = "AgentPoolPropertyImmutable" // osType, osSku, vmSize of an existing pool
	CodeAgentPoolRemovalNotSupported                 = "AgentPoolRemovalNotSupported"
	CodeServiceCidrImmutable                         = "ServiceCidrImmutable"
	CodeDNSServiceIPImmutable                        = "DNSServiceIPImmutable"
	CodePodCidrImmutable                             = "PodCidrImmutable"
	CodeOutboundTypeChangeNotSupported               = "OutboundTypeChangeNotSupported"
)

// Kubernetes minimums AKS documents.
const (
	minK8sACNS              = "1.29" // ACNS on the Cilium dataplane
	minK8sCES               = "1.32" // CiliumEndpointSlices (Cilium ≥ 1.17)
	minK8sContainerNetLogs  = "1.33" // stored container network logs
	minK8sOverlayMigration  = "1.27" // IPAM → overlay
	maxAgentPools           = 100
	minMaxPods, maxMaxPods  = 10, 250
	maxCount                = 1000
	linuxPoolNameMax        = 12
	windowsPoolNameMax      = 6
	overlayNodeBlockBits    = 24 // each overlay node gets a /24 of the pod CIDR
	ciliumVersionForCES     = "1.17"
	reservedRangesForAKSDoc = "169.254.0.0/16, 172.30.0.0/16, 172.31.0.0/16, 192.0.2.0/24"
)

// ciliumMatrix is AKS's minimum Cilium version per Kubernetes minor (azure-cni-powered-by-cilium
// docs, 2026-06).
var ciliumMatrix = []struct{ kubernetes, cilium string }{
	{"1.29", "1.14.20"},
	{"1.30", "1.14.20"},
	{"1.31", "1.16.16"},
	{"1.32", "1.17.9"},
	{"1.33", "1.17.9"},
	{"1.34", "1.18.6"},
	{"1.35", "1.18.6"},
}

// MinCiliumVersion returns the minimum Cilium version AKS runs with a Kubernetes version ("1.33"
// or "1.33.2"): 1.14.20 for 1.29–1.30, 1.16.16 for 1.31, 1.17.9 for 1.32–1.33, 1.18.6 for
// 1.34–1.35. ok is false for versions outside the table.
func MinCiliumVersion(kubernetesVersion string) (cilium string, ok bool) {
	v, ok := parseKubeVersion(kubernetesVersion)
	if !ok {
		return "", false
	}
	minor := fmt.Sprintf("%d.%d", v.major, v.minor)
	for _, e := range ciliumMatrix {
		if e.kubernetes == minor {
			return e.cilium, true
		}
	}
	return "", false
}

// apiFeature is a field and the first preview and stable AKS api-versions that carry it.
type apiFeature struct {
	name            string
	preview, stable string // dates
}

var (
	featureDataplane        = apiFeature{"networkProfile.networkDataplane", "2023-02-02", "2023-03-01"}
	featureOverlay          = apiFeature{"networkProfile.networkPluginMode overlay", "2022-04-02", "2023-03-01"}
	featureACNS             = apiFeature{"networkProfile.advancedNetworking", "2024-04-02", "2024-09-01"}
	featureAdvancedPolicies = apiFeature{"advancedNetworking.security.advancedNetworkPolicies", "2025-02-02", "2025-08-01"}
)

func (f apiFeature) String() string {
	return fmt.Sprintf("%s needs api-version %s-preview or later (stable: %s or later)", f.name, f.preview, f.stable)
}

type apiVersion struct {
	date    string
	preview bool
}

func parseAPIVersion(s string) (apiVersion, bool) {
	date, preview := strings.CutSuffix(s, "-preview")
	if _, err := time.Parse(time.DateOnly, date); err != nil || len(date) != len(time.DateOnly) {
		return apiVersion{}, false
	}
	return apiVersion{date: date, preview: preview}, true
}

func (v apiVersion) supports(f apiFeature) bool {
	if v.preview {
		return v.date >= f.preview
	}
	return v.date >= f.stable
}

type kubeVersion struct {
	major, minor, patch int
	hasPatch            bool
}

var kubeVersionRE = regexp.MustCompile(`^(\d+)\.(\d+)(?:\.(\d+))?$`)

func parseKubeVersion(s string) (kubeVersion, bool) {
	m := kubeVersionRE.FindStringSubmatch(s)
	if m == nil {
		return kubeVersion{}, false
	}
	var v kubeVersion
	v.major, _ = strconv.Atoi(m[1])
	v.minor, _ = strconv.Atoi(m[2])
	if m[3] != "" {
		v.patch, _ = strconv.Atoi(m[3])
		v.hasPatch = true
	}
	return v, true
}

func (v kubeVersion) atLeast(major, minor int) bool {
	return v.major > major || v.major == major && v.minor >= minor
}

// atLeastVersion reports whether v is at least "major.minor" min.
func (v kubeVersion) atLeastVersion(min string) bool {
	m, _ := parseKubeVersion(min)
	return v.atLeast(m.major, m.minor)
}

// compare orders versions; a version without a patch matches any patch of its minor.
func (v kubeVersion) compare(o kubeVersion) int {
	if c := cmpInt(v.major, o.major); c != 0 {
		return c
	}
	if c := cmpInt(v.minor, o.minor); c != 0 {
		return c
	}
	if !v.hasPatch || !o.hasPatch {
		return 0
	}
	return cmpInt(v.patch, o.patch)
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

var (
	subscriptionRE  = regexp.MustCompile(`^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$`)
	resourceGroupRE = regexp.MustCompile(`^[\p{L}\p{N}_\-.()]{1,90}$`)
	clusterNameRE   = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?$`)
	locationRE      = regexp.MustCompile(`^[a-z][a-z0-9]*$`)
	dnsPrefixRE     = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,52}[a-zA-Z0-9])?$`)
	poolNameRE      = regexp.MustCompile(`^[a-z][a-z0-9]*$`)
	vnetNameRE      = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,62}[a-zA-Z0-9_])?$`)
	subnetNameRE    = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,78}[a-zA-Z0-9_])?$`)
	delegationRE    = regexp.MustCompile(`^[A-Za-z0-9.]+/[A-Za-z0-9/]+$`)
)

// reservedRanges are the ranges AKS clusters may not use for the service, pod or VNet address
// ranges (AKS docs; Azure/AKS#2234).
var reservedRanges = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.30.0.0/16"),
	netip.MustParsePrefix("172.31.0.0/16"),
	netip.MustParsePrefix("192.0.2.0/24"),
}

// Validate checks s.WithDefaults() against AKS's rules for a cluster with Azure CNI powered by
// Cilium and returns a [*ValidationError] listing every problem, or nil. It checks syntax (name,
// resource group, location, versions, api-version, identity and workspace IDs), the network
// model (overlay needs a pod CIDR and no pod subnet; pod subnet needs node and pod subnets; node
// subnet needs node subnets; kubenet is refused), the dataplane/policy pairing, subnet IDs
// (arm.ParseResourceID, type Microsoft.Network/virtualNetworks/subnets, one VNet), CIDRs
// (syntax, reserved ranges, overlaps among pod CIDR, service CIDR, the VNet's address space and
// subnets when s.VNet is set), the DNS service IP, pools (names, counts, modes, Linux only with
// Cilium, maxPods 10–250), ACNS (Cilium, Kubernetes ≥ 1.29, advanced policies need security,
// container network logs), CiliumEndpointSlices (Kubernetes ≥ 1.32) and the features the
// api-version must carry. See the README for the table of rules and codes.
func Validate(s ClusterSpec) error {
	v := &validator{}
	v.spec(s.WithDefaults())
	return v.err()
}

type validator struct {
	problems []Problem
}

func (v *validator) add(field, value, code, format string, args ...any) {
	p := Problem{Field: field, Value: value, Code: code, Message: fmt.Sprintf(format, args...)}
	for _, q := range v.problems {
		if q.Field == p.Field && q.Code == p.Code && q.Value == p.Value {
			return
		}
	}
	v.problems = append(v.problems, p)
}

func (v *validator) err() error {
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

// spec validates a defaulted spec.
func (v *validator) spec(s ClusterSpec) {
	if !subscriptionRE.MatchString(s.SubscriptionID) {
		v.add("subscriptionId", s.SubscriptionID, CodeInvalidSubscriptionID, "the subscription ID must be a GUID")
	}
	if !resourceGroupRE.MatchString(s.ResourceGroup) || strings.HasSuffix(s.ResourceGroup, ".") {
		v.add("resourceGroup", s.ResourceGroup, CodeInvalidResourceGroupName, "a resource group name is 1–90 letters, digits, underscores, hyphens, periods and parentheses, not ending in a period")
	}
	if !clusterNameRE.MatchString(s.Name) {
		v.add("name", s.Name, CodeInvalidClusterName, "a cluster name is 1–63 letters, digits, underscores and hyphens, starting and ending with a letter or digit")
	}
	if !locationRE.MatchString(s.Location) {
		v.add("location", s.Location, CodeInvalidLocation, `the location is a region's short name such as "eastus2"`)
	}
	k8s, k8sOK := parseKubeVersion(s.KubernetesVersion)
	if !k8sOK {
		v.add("kubernetesVersion", s.KubernetesVersion, CodeInvalidKubernetesVersion, `the Kubernetes version is "major.minor" or "major.minor.patch", e.g. "1.33"`)
	}
	if !dnsPrefixRE.MatchString(s.DNSPrefix) {
		v.add("dnsPrefix", s.DNSPrefix, CodeInvalidDNSPrefix, "a DNS prefix (default: the cluster name) is 1–54 letters, digits and hyphens, starting and ending with a letter or digit")
	}
	api, apiOK := parseAPIVersion(s.APIVersion)
	if !apiOK {
		v.add("apiVersion", s.APIVersion, CodeInvalidAPIVersion, `an api-version is "YYYY-MM-DD" or "YYYY-MM-DD-preview"`)
	}
	if !strings.EqualFold(s.Identity, IdentitySystemAssigned) {
		v.resourceID("identity", s.Identity, "Microsoft.ManagedIdentity/userAssignedIdentities", CodeInvalidIdentity)
	}
	if s.MonitoringWorkspaceID != "" {
		v.resourceID("monitoringWorkspaceId", s.MonitoringWorkspaceID, "Microsoft.OperationalInsights/workspaces", CodeInvalidWorkspaceID)
	}

	v.network(s)
	v.pools(s)
	v.acns(s, k8s, k8sOK)
	if s.Network.CiliumEndpointSlices {
		if s.Network.Dataplane != DataplaneCilium {
			v.add("network.ciliumEndpointSlices", "true", CodeCiliumEndpointSlicesRequireCilium, "CiliumEndpointSlices need the Cilium dataplane (network.dataplane %q)", s.Network.Dataplane)
		}
		if k8sOK && !k8s.atLeastVersion(minK8sCES) {
			c, _ := MinCiliumVersion(s.KubernetesVersion)
			v.add("kubernetesVersion", s.KubernetesVersion, CodeCiliumEndpointSlicesRequireKubernetes132,
				"CiliumEndpointSlices need Cilium ≥ %s, which AKS runs from Kubernetes %s (this version gets Cilium %s)", ciliumVersionForCES, minK8sCES, orUnknown(c))
		}
	}
	if apiOK {
		v.apiFeatures(s, api)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "of an unknown version"
	}
	return s
}

// resourceID checks that id parses as an ARM ID of type typ.
func (v *validator) resourceID(field, id, typ, code string) bool {
	rid, err := arm.ParseResourceID(id)
	if err != nil {
		v.add(field, id, code, "not an Azure resource ID: %v", err)
		return false
	}
	if !strings.EqualFold(rid.ResourceType.String(), typ) {
		v.add(field, id, code, "a %s ID, not a %s ID", typ, rid.ResourceType)
		return false
	}
	return true
}

func (v *validator) network(s ClusterSpec) {
	n := s.Network
	switch n.Model {
	case ModelOverlay, ModelPodSubnet, ModelNodeSubnet:
	case ModelKubenet:
		v.add("network.model", string(n.Model), CodeKubenetNotSupported, "kubenet cannot run Cilium: use overlay (an existing kubenet cluster is migrated to overlay first)")
	default:
		v.add("network.model", string(n.Model), CodeInvalidNetworkModel, "the network model is overlay, podsubnet or nodesubnet")
	}
	dpOK := n.Dataplane == DataplaneAzure || n.Dataplane == DataplaneCilium
	if !dpOK {
		v.add("network.dataplane", string(n.Dataplane), CodeInvalidNetworkDataplane, "the dataplane is azure or cilium")
	}
	switch n.Policy {
	case PolicyNone, PolicyAzure, PolicyCalico, PolicyCilium:
		if n.Dataplane == DataplaneCilium && n.Policy != PolicyCilium {
			v.add("network.policy", string(n.Policy), CodeCiliumDataplaneRequiresNetworkPolicyCilium, "Cilium dataplane requires network policy cilium")
		}
		if n.Policy == PolicyCilium && n.Dataplane == DataplaneAzure {
			v.add("network.policy", string(n.Policy), CodeNetworkPolicyCiliumRequiresCiliumDataplane, "network policy cilium requires network dataplane cilium")
		}
	default:
		v.add("network.policy", string(n.Policy), CodeInvalidNetworkPolicy, "the network policy is none, azure, calico or cilium")
	}
	if !slices.Contains(armcontainerservice.PossibleOutboundTypeValues(), armcontainerservice.OutboundType(n.OutboundType)) {
		v.add("network.outboundType", n.OutboundType, CodeInvalidOutboundType, "the outbound type is one of %v", armcontainerservice.PossibleOutboundTypeValues())
	}

	// Pod CIDR by model.
	var pod, svc netip.Prefix
	var podOK, svcOK bool
	switch n.Model {
	case ModelOverlay, ModelKubenet:
		if n.PodCIDR == "" {
			v.add("network.podCidr", "", CodePodCidrRequired, "%s needs a pod CIDR (e.g. 192.168.0.0/16)", n.Model)
		} else {
			pod, podOK = v.cidr("network.podCidr", n.PodCIDR)
		}
	default:
		if n.PodCIDR != "" {
			v.add("network.podCidr", n.PodCIDR, CodePodCidrNotAllowed, "a pod CIDR needs network model overlay; in the %s model pods take VNet addresses", n.Model)
		}
	}
	svc, svcOK = v.cidr("network.serviceCidr", n.ServiceCIDR)
	if podOK && svcOK && pod.Overlaps(svc) {
		v.add("network.podCidr", n.PodCIDR, CodePodCidrOverlapsServiceCidr, "the pod CIDR overlaps the service CIDR %s", n.ServiceCIDR)
	}
	if podOK && n.Model == ModelOverlay && pod.Bits() <= overlayNodeBlockBits {
		var nodes int64
		for _, p := range s.Pools {
			nodes += int64(p.Count)
		}
		if blocks := int64(1) << (overlayNodeBlockBits - pod.Bits()); blocks < nodes {
			v.add("network.podCidr", n.PodCIDR, CodePodCidrTooSmall, "overlay gives each node a /24: %s holds %d nodes, the pools have %d", n.PodCIDR, blocks, nodes)
		}
	} else if podOK && n.Model == ModelOverlay {
		v.add("network.podCidr", n.PodCIDR, CodePodCidrTooSmall, "overlay gives each node a /24: the pod CIDR must be a /24 or larger")
	}

	// DNS service IP.
	dns, err := netip.ParseAddr(n.DNSServiceIP)
	switch {
	case err != nil:
		v.add("network.dnsServiceIP", n.DNSServiceIP, CodeInvalidDNSServiceIP, "not an IP address: %v", err)
	case svcOK && !svc.Contains(dns):
		v.add("network.dnsServiceIP", n.DNSServiceIP, CodeDNSServiceIPOutsideServiceCidr, "the DNS service IP must be inside the service CIDR %s", n.ServiceCIDR)
	case svcOK:
		first := svc.Masked().Addr()
		if dns == first || dns == first.Next() || dns == lastAddr(svc) {
			v.add("network.dnsServiceIP", n.DNSServiceIP, CodeDNSServiceIPReserved, "the network address, the first address (the kubernetes service) and the broadcast address of %s are taken; use e.g. the tenth address", n.ServiceCIDR)
		}
	}

	// The VNet, when the spec creates it.
	if s.VNet != nil {
		v.vnet(s, pod, podOK, svc, svcOK)
	}
}

// cidr parses an IPv4 CIDR that is a network address outside AKS's reserved ranges.
func (v *validator) cidr(field, value string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(value)
	if err != nil {
		v.add(field, value, CodeInvalidCidr, "not a CIDR: %v", err)
		return netip.Prefix{}, false
	}
	if !p.Addr().Is4() {
		v.add(field, value, CodeInvalidCidr, "an IPv4 CIDR is expected (dual stack is not modeled)")
		return netip.Prefix{}, false
	}
	if p.Masked() != p {
		v.add(field, value, CodeInvalidCidr, "not a network address: did you mean %s?", p.Masked())
		return netip.Prefix{}, false
	}
	for _, r := range reservedRanges {
		if p.Overlaps(r) {
			v.add(field, value, CodeCidrInReservedRange, "AKS clusters may not use %s (overlaps %s)", reservedRangesForAKSDoc, r)
			break
		}
	}
	return p, true
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n |= uint32(1)<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

func (v *validator) vnet(s ClusterSpec, pod netip.Prefix, podOK bool, svc netip.Prefix, svcOK bool) {
	vn := s.VNet
	if !vnetNameRE.MatchString(vn.Name) {
		v.add("vnet.name", vn.Name, CodeInvalidVNet, "a VNet name is 2–64 letters, digits, underscores, periods and hyphens, starting with a letter or digit")
	}
	if len(vn.AddressSpace) == 0 {
		v.add("vnet.addressSpace", "", CodeInvalidVNet, "a VNet needs at least one address prefix")
	}
	var spaces []netip.Prefix
	for i, a := range vn.AddressSpace {
		if p, ok := v.cidr(fmt.Sprintf("vnet.addressSpace[%d]", i), a); ok {
			spaces = append(spaces, p)
		}
	}
	type subnet struct {
		name string
		p    netip.Prefix
	}
	var subnets []subnet
	seen := map[string]bool{}
	for i, sn := range vn.Subnets {
		f := fmt.Sprintf("vnet.subnets[%d]", i)
		if !subnetNameRE.MatchString(sn.Name) {
			v.add(f+".name", sn.Name, CodeInvalidVNet, "a subnet name is 1–80 letters, digits, underscores, periods and hyphens, starting with a letter or digit")
		}
		if seen[strings.ToLower(sn.Name)] {
			v.add(f+".name", sn.Name, CodeDuplicateSubnetName, "two subnets of the VNet are named %q", sn.Name)
		}
		seen[strings.ToLower(sn.Name)] = true
		if sn.Delegation != "" && !delegationRE.MatchString(sn.Delegation) {
			v.add(f+".delegation", sn.Delegation, CodeInvalidVNet, `a delegation is a service name such as "Microsoft.ContainerService/managedClusters"`)
		}
		p, ok := v.cidr(f+".prefix", sn.Prefix)
		if !ok {
			continue
		}
		inside := false
		for _, sp := range spaces {
			if sp.Bits() <= p.Bits() && sp.Contains(p.Addr()) {
				inside = true
			}
		}
		if len(spaces) > 0 && !inside {
			v.add(f+".prefix", sn.Prefix, CodeNetcfgSubnetRangeOutsideVnet, "subnet %q is outside the VNet's address space %v", sn.Name, vn.AddressSpace)
		}
		for _, o := range subnets {
			if o.p.Overlaps(p) {
				v.add(f+".prefix", sn.Prefix, CodeNetcfgSubnetRangesOverlap, "subnet %q overlaps subnet %q (%s)", sn.Name, o.name, o.p)
			}
		}
		subnets = append(subnets, subnet{sn.Name, p})
	}
	// Pod and service CIDRs against the VNet.
	check := func(field, value string, p netip.Prefix) {
		for _, sn := range subnets {
			if p.Overlaps(sn.p) {
				code := CodeNetworkProfileCIDROverlapVNET
				if field == "network.serviceCidr" {
					code = CodeServiceCidrOverlapExistingSubnetsCidr
				}
				v.add(field, value, code, "%s overlaps subnet %q (%s) of VNet %q", value, sn.name, sn.p, vn.Name)
				return
			}
		}
		for _, sp := range spaces {
			if p.Overlaps(sp) {
				v.add(field, value, CodeNetworkProfileCIDROverlapVNET, "%s overlaps the address space %s of VNet %q", value, sp, vn.Name)
				return
			}
		}
	}
	if podOK {
		check("network.podCidr", s.Network.PodCIDR, pod)
	}
	if svcOK {
		check("network.serviceCidr", s.Network.ServiceCIDR, svc)
	}
	// Pools must name subnets of this VNet.
	for i, p := range s.Pools {
		for _, ref := range []struct{ field, id string }{
			{fmt.Sprintf("pools[%d].vnetSubnetId", i), p.VNetSubnetID},
			{fmt.Sprintf("pools[%d].podSubnetId", i), p.PodSubnetID},
		} {
			if ref.id == "" {
				continue
			}
			rid, err := arm.ParseResourceID(ref.id)
			if err != nil {
				continue // reported by pools
			}
			if !strings.EqualFold(ref.id, s.SubnetID(rid.Name)) || !seen[strings.ToLower(rid.Name)] {
				v.add(ref.field, ref.id, CodeSubnetNotInVNet, "the spec creates VNet %q; name one of its subnets (ClusterSpec.SubnetID)", vn.Name)
			}
		}
	}
}

func (v *validator) pools(s ClusterSpec) {
	if len(s.Pools) > maxAgentPools {
		v.add("pools", strconv.Itoa(len(s.Pools)), CodeTooManyAgentPools, "a cluster has at most %d agent pools", maxAgentPools)
	}
	system := false
	names := map[string]int{}
	var vnetOf string // the VNet of the first subnet seen
	cilium := s.Network.Dataplane == DataplaneCilium
	for i, p := range s.Pools {
		f := fmt.Sprintf("pools[%d]", i)
		// OS type first: the name rule depends on it.
		windows := p.OSType == OSTypeWindows
		if p.OSType != OSTypeLinux && !windows {
			v.add(f+".osType", p.OSType, CodeInvalidOSType, "the OS type is Linux or Windows")
		}
		switch {
		case !poolNameRE.MatchString(p.Name):
			v.add(f+".name", p.Name, CodeInvalidAgentPoolName, "a pool name is lowercase letters and digits, starting with a letter (AKS: InvalidParameter, target agentPoolProfile.name)")
		case windows && len(p.Name) > windowsPoolNameMax:
			v.add(f+".name", p.Name, CodeWindowsAgentPoolNameTooLong, "a Windows pool name is at most %d characters", windowsPoolNameMax)
		case len(p.Name) > linuxPoolNameMax:
			v.add(f+".name", p.Name, CodeInvalidAgentPoolName, "a Linux pool name is at most %d characters", linuxPoolNameMax)
		}
		if j, dup := names[p.Name]; dup {
			v.add(f+".name", p.Name, CodeDuplicateAgentPoolName, "pools[%d] has the same name", j)
		} else {
			names[p.Name] = i
		}
		switch p.Mode {
		case ModeSystem:
			system = true
			if windows {
				v.add(f+".osType", p.OSType, CodeSystemPoolMustBeLinux, "a System pool runs Linux")
			}
			if p.Count < 1 || p.Count > maxCount {
				v.add(f+".count", strconv.Itoa(int(p.Count)), CodeInvalidAgentPoolCount, "a System pool has 1–%d nodes", maxCount)
			}
		case ModeUser:
			if p.Count < 0 || p.Count > maxCount {
				v.add(f+".count", strconv.Itoa(int(p.Count)), CodeInvalidAgentPoolCount, "a User pool has 0–%d nodes", maxCount)
			}
		default:
			v.add(f+".mode", p.Mode, CodeInvalidAgentPoolMode, "the pool mode is System or User")
		}
		if p.VMSize == "" {
			v.add(f+".vmSize", "", CodeMissingVMSize, `every pool needs a VM size, e.g. "Standard_D4s_v5"`)
		}
		if p.OSSKU != "" {
			sku := armcontainerservice.OSSKU(p.OSSKU)
			winSKU := strings.HasPrefix(p.OSSKU, "Windows")
			switch {
			case !slices.Contains(armcontainerservice.PossibleOSSKUValues(), sku):
				v.add(f+".osSku", p.OSSKU, CodeInvalidOSSKU, "the OS SKU is one of %v", armcontainerservice.PossibleOSSKUValues())
			case winSKU != windows:
				v.add(f+".osSku", p.OSSKU, CodeInvalidOSSKU, "OS SKU %s does not run on OS type %s", p.OSSKU, p.OSType)
			}
		}
		if windows && cilium {
			v.add(f+".osType", p.OSType, CodeWindowsNotSupportedWithCilium, "Azure CNI powered by Cilium runs Linux pools only")
		}
		if p.MaxPods < minMaxPods || p.MaxPods > maxMaxPods {
			v.add(f+".maxPods", strconv.Itoa(int(p.MaxPods)), CodeInvalidMaxPods, "maxPods is %d–%d", minMaxPods, maxMaxPods)
		}
		if p.OrchestratorVersion != "" {
			pv, ok := parseKubeVersion(p.OrchestratorVersion)
			cv, cok := parseKubeVersion(s.KubernetesVersion)
			switch {
			case !ok:
				v.add(f+".orchestratorVersion", p.OrchestratorVersion, CodeInvalidOrchestratorVersion, `the pool's Kubernetes version is "major.minor" or "major.minor.patch"`)
			case cok && pv.compare(cv) > 0:
				v.add(f+".orchestratorVersion", p.OrchestratorVersion, CodeInvalidOrchestratorVersion, "a pool cannot run a newer Kubernetes than the control plane (%s)", s.KubernetesVersion)
			}
		}
		v.poolSubnets(s, i, p, &vnetOf)
	}
	if !system {
		v.add("pools", strconv.Itoa(len(s.Pools)), CodeMustDefineAtLeastOneSystemPool, "must define at least one System pool")
	}
}

func (v *validator) poolSubnets(s ClusterSpec, i int, p Pool, vnetOf *string) {
	f := fmt.Sprintf("pools[%d]", i)
	model := s.Network.Model
	switch model {
	case ModelPodSubnet:
		if p.VNetSubnetID == "" {
			v.add(f+".vnetSubnetId", "", CodeSubnetRequired, "the podsubnet model needs a node subnet per pool")
		}
		if p.PodSubnetID == "" {
			v.add(f+".podSubnetId", "", CodeSubnetRequired, "the podsubnet model needs a pod subnet per pool")
		}
	case ModelNodeSubnet:
		if p.VNetSubnetID == "" {
			v.add(f+".vnetSubnetId", "", CodeSubnetRequired, "the nodesubnet model needs a node subnet per pool")
		}
		fallthrough
	default:
		if p.PodSubnetID != "" {
			v.add(f+".podSubnetId", p.PodSubnetID, CodePodSubnetNotAllowed, "a pod subnet needs network model podsubnet (the %s model does not use one)", model)
		}
	}
	var node, pod *arm.ResourceID
	parse := func(field, id string) *arm.ResourceID {
		if id == "" {
			return nil
		}
		if !v.resourceID(field, id, "Microsoft.Network/virtualNetworks/subnets", CodeInvalidSubnetID) {
			return nil
		}
		rid, _ := arm.ParseResourceID(id)
		return rid
	}
	node = parse(f+".vnetSubnetId", p.VNetSubnetID)
	pod = parse(f+".podSubnetId", p.PodSubnetID)
	for _, ref := range []struct {
		field, id string
		rid       *arm.ResourceID
	}{{f + ".vnetSubnetId", p.VNetSubnetID, node}, {f + ".podSubnetId", p.PodSubnetID, pod}} {
		if ref.rid == nil || ref.rid.Parent == nil {
			continue
		}
		vnet := strings.ToLower(ref.rid.Parent.String())
		if *vnetOf == "" {
			*vnetOf = vnet
		} else if vnet != *vnetOf {
			v.add(ref.field, ref.id, CodeSubnetsInDifferentVNets, "all node and pod subnets of a cluster are in one VNet (the first is %s)", *vnetOf)
		}
	}
	if node != nil && pod != nil && strings.EqualFold(p.VNetSubnetID, p.PodSubnetID) {
		v.add(f+".podSubnetId", p.PodSubnetID, CodePodSubnetIsNodeSubnet, "the pod subnet must differ from the node subnet (for pods on the node subnet use the nodesubnet model)")
	}
}

func (v *validator) acns(s ClusterSpec, k8s kubeVersion, k8sOK bool) {
	a := s.ACNS
	if a == nil {
		return
	}
	if s.Network.Dataplane != DataplaneCilium {
		v.add("acns", "enabled", CodeACNSRequiresCilium, "ceskit enables Advanced Container Networking Services on the Cilium dataplane only (network.dataplane %q); container network security needs it in AKS too", s.Network.Dataplane)
	}
	if k8sOK && !k8s.atLeastVersion(minK8sACNS) {
		v.add("kubernetesVersion", s.KubernetesVersion, CodeACNSRequiresKubernetes129, "Advanced Container Networking Services on Cilium need Kubernetes ≥ %s", minK8sACNS)
	}
	if !a.Observability && !a.Security {
		v.add("acns", "{}", CodeACNSNoFeatureEnabled, "enable observability or security, or leave acns nil")
	}
	switch a.AdvancedNetworkPolicies {
	case "", AdvancedPoliciesNone:
	case AdvancedPoliciesFQDN, AdvancedPoliciesL7:
		if !a.Security {
			v.add("acns.advancedNetworkPolicies", string(a.AdvancedNetworkPolicies), CodeAdvancedNetworkPoliciesRequireSecurity, "FQDN and L7 policies need acns.security")
		}
	default:
		v.add("acns.advancedNetworkPolicies", string(a.AdvancedNetworkPolicies), CodeInvalidAdvancedNetworkPolicies, "advanced network policies are None, FQDN or L7")
	}
	if a.ContainerNetworkLogs {
		if !a.Observability {
			v.add("acns.containerNetworkLogs", "true", CodeContainerNetworkLogsRequireObservability, "container network logs need acns.observability")
		}
		if s.MonitoringWorkspaceID == "" {
			v.add("monitoringWorkspaceId", "", CodeContainerNetworkLogsRequireMonitoring, "container network logs need the monitoring addon (a Log Analytics workspace)")
		}
		if k8sOK && !k8s.atLeastVersion(minK8sContainerNetLogs) {
			v.add("kubernetesVersion", s.KubernetesVersion, CodeContainerNetworkLogsRequireKubernetes133, "stored container network logs need Kubernetes ≥ %s", minK8sContainerNetLogs)
		}
	}
}

func (v *validator) apiFeatures(s ClusterSpec, api apiVersion) {
	need := []apiFeature{featureDataplane}
	if s.Network.Model == ModelOverlay {
		need = append(need, featureOverlay)
	}
	if s.ACNS != nil {
		need = append(need, featureACNS)
		if s.ACNS.Security && s.ACNS.AdvancedNetworkPolicies != "" {
			need = append(need, featureAdvancedPolicies)
		}
	}
	for _, f := range need {
		if !api.supports(f) {
			v.add("apiVersion", s.APIVersion, CodeUnsupportedAPIVersion, "%s", f)
		}
	}
}

// ValidateUpdate checks that the cluster current (as a GET returns it) can be brought to
// desired: it reports [Validate]'s problems of desired — after filling what desired leaves empty
// from current (DNS prefix, identity, service CIDR, DNS service IP, outbound type, tags, and
// each existing pool's mode, OS type, OS SKU and maxPods) and applying
// [ClusterSpec.WithDefaults] — together with the transition rules:
//
//   - Cilium cannot be disabled once enabled (recreate the cluster).
//   - The IPAM model changes only kubenet → overlay and node subnet → overlay (planned as its
//     own operation, never together with the dataplane); it needs Kubernetes ≥ 1.27, kubenet
//     needs a user-assigned identity, and Azure NPM or Calico cannot be kept through it.
//   - Windows pools in current block the Cilium dataplane; node auto-provisioning must be off
//     for a network migration.
//   - Existing pools keep maxPods, subnets, OS type, OS SKU and VM size; pools are not removed.
//   - Location, DNS prefix, service CIDR, DNS service IP, outbound type and (within overlay)
//     the pod CIDR stay; the identity is not changed; Kubernetes is not downgraded and upgrades
//     one minor version at a time.
//
// It returns a [*ValidationError] listing every problem, nil when the update can be planned, or
// another error when current cannot be read (e.g. networkPlugin none).
func ValidateUpdate(desired ClusterSpec, current armcontainerservice.ManagedCluster) error {
	cur, err := SpecFromManagedCluster(current)
	if err != nil {
		return fmt.Errorf("validate update: %w", err)
	}
	d := mergeCurrent(desired, cur).WithDefaults()
	v := &validator{}
	v.spec(d)
	v.transition(desired, d, cur, current)
	return v.err()
}

// mergeCurrent fills what desired leaves empty from the current cluster's spec, so that
// defaults meant for new clusters do not turn into changes of existing ones.
func mergeCurrent(desired, cur ClusterSpec) ClusterSpec {
	d := desired.clone()
	fill := func(dst *string, src string) {
		if *dst == "" {
			*dst = src
		}
	}
	fill(&d.DNSPrefix, cur.DNSPrefix)
	fill(&d.Identity, cur.Identity)
	fill(&d.Network.ServiceCIDR, cur.Network.ServiceCIDR)
	fill(&d.Network.DNSServiceIP, cur.Network.DNSServiceIP)
	fill(&d.Network.OutboundType, cur.Network.OutboundType)
	if d.Network.Model == cur.Network.Model {
		fill(&d.Network.PodCIDR, cur.Network.PodCIDR)
	}
	if d.Tags == nil && cur.Tags != nil {
		d.Tags = cur.clone().Tags
	}
	for i := range d.Pools {
		p := &d.Pools[i]
		c, ok := findPool(cur.Pools, p.Name)
		if !ok {
			continue
		}
		fill(&p.Mode, c.Mode)
		fill(&p.OSType, c.OSType)
		fill(&p.OSSKU, c.OSSKU)
		if p.MaxPods == 0 {
			p.MaxPods = c.MaxPods
		}
	}
	return d
}

func findPool(pools []Pool, name string) (Pool, bool) {
	for _, p := range pools {
		if p.Name == name {
			return p, true
		}
	}
	return Pool{}, false
}

// transition checks the rules of going from cur to d (merged and defaulted); raw is desired as
// the caller wrote it.
func (v *validator) transition(raw, d, cur ClusterSpec, current armcontainerservice.ManagedCluster) {
	switch {
	case !strings.EqualFold(d.SubscriptionID, cur.SubscriptionID):
		v.add("subscriptionId", d.SubscriptionID, CodeClusterMismatch, "the current cluster is in subscription %s", cur.SubscriptionID)
	case !strings.EqualFold(d.ResourceGroup, cur.ResourceGroup):
		v.add("resourceGroup", d.ResourceGroup, CodeClusterMismatch, "the current cluster is in resource group %s", cur.ResourceGroup)
	case !strings.EqualFold(d.Name, cur.Name):
		v.add("name", d.Name, CodeClusterMismatch, "the current cluster is named %s", cur.Name)
	}
	if !strings.EqualFold(strings.ReplaceAll(d.Location, " ", ""), strings.ReplaceAll(cur.Location, " ", "")) {
		v.add("location", d.Location, CodeLocationImmutable, "the cluster is in %s; a cluster cannot move", cur.Location)
	}
	if d.DNSPrefix != cur.DNSPrefix {
		v.add("dnsPrefix", d.DNSPrefix, CodeDNSPrefixImmutable, "the DNS prefix is %q and set at creation", cur.DNSPrefix)
	}
	if raw.Identity != "" && cur.Identity != "" && !strings.EqualFold(raw.Identity, cur.Identity) {
		v.add("identity", raw.Identity, CodeIdentityChangeNotSupported, "the cluster's identity is %s; ceskit does not plan identity changes (az aks update --assign-identity)", cur.Identity)
	}
	dk, dok := parseKubeVersion(d.KubernetesVersion)
	ck, cok := parseKubeVersion(cur.KubernetesVersion)
	if dok && cok {
		switch {
		case dk.compare(ck) < 0:
			v.add("kubernetesVersion", d.KubernetesVersion, CodeKubernetesVersionDowngrade, "the cluster runs %s; Kubernetes is never downgraded", cur.KubernetesVersion)
		case dk.major != ck.major || dk.minor > ck.minor+1:
			v.add("kubernetesVersion", d.KubernetesVersion, CodeKubernetesUpgradeSkipsMinor, "the cluster runs %s; upgrade one minor version at a time", cur.KubernetesVersion)
		}
	}

	// Network.
	n, c := d.Network, cur.Network
	if c.Dataplane == DataplaneCilium && n.Dataplane != DataplaneCilium {
		v.add("network.dataplane", string(n.Dataplane), CodeCiliumDataplaneCannotBeDisabled, "the cluster runs the Cilium dataplane, which cannot be disabled; recreate the cluster")
	}
	modelChange := n.Model != c.Model
	toOverlay := modelChange && n.Model == ModelOverlay
	if modelChange {
		switch {
		case n.Model == ModelKubenet:
			// Validate reports it.
		case toOverlay && (c.Model == ModelKubenet || c.Model == ModelNodeSubnet):
			if dok && !dk.atLeastVersion(minK8sOverlayMigration) {
				v.add("kubernetesVersion", d.KubernetesVersion, CodeOverlayMigrationRequiresKubernetes127, "migrating to overlay needs Kubernetes ≥ %s", minK8sOverlayMigration)
			}
			if c.Model == ModelKubenet && !isUserAssigned(cur.Identity) {
				v.add("identity", cur.Identity, CodeKubenetMigrationRequiresUserAssignedIdentity, "kubenet → overlay needs a user-assigned managed identity (the route table is detached); assign one first")
			}
			if n.Policy == PolicyAzure || n.Policy == PolicyCalico {
				v.add("network.policy", string(n.Policy), CodeOverlayMigrationWithNetworkPolicy, "cannot update cluster to Azure CNI Overlay while using network policy %s: use none or cilium (AKS: ValidationError)", n.Policy)
			}
		case toOverlay && c.Model == ModelPodSubnet:
			v.add("network.model", string(n.Model), CodeNetworkModelChangeNotSupported, "a pod-subnet cluster (dynamic IP allocation) cannot migrate to overlay")
		default:
			v.add("network.model", string(n.Model), CodeNetworkModelChangeNotSupported, "the cluster uses %s; only kubenet and node subnet migrate, to overlay", c.Model)
		}
	} else if n.Model == ModelOverlay && n.PodCIDR != c.PodCIDR {
		v.add("network.podCidr", n.PodCIDR, CodePodCidrImmutable, "the cluster's pod CIDR is %s", c.PodCIDR)
	}
	toCilium := n.Dataplane == DataplaneCilium && c.Dataplane != DataplaneCilium
	if n.Policy != c.Policy {
		switch {
		case n.Policy == PolicyCilium, n.Policy == PolicyNone:
		default:
			v.add("network.policy", string(n.Policy), CodeNetworkPolicyChangeNotSupported, "the cluster runs network policy %s; it can be removed (none) or replaced by cilium with the Cilium dataplane", c.Policy)
		}
	}
	if (toCilium || toOverlay) && napAuto(current) {
		field, value := "network.dataplane", string(n.Dataplane)
		if !toCilium {
			field, value = "network.model", string(n.Model)
		}
		v.add(field, value, CodeNodeAutoProvisioningNotSupported, "disable node auto-provisioning first: the network migration does not support it")
	}
	if toCilium {
		for _, p := range cur.Pools {
			if p.OSType != OSTypeWindows {
				continue
			}
			field := "pools"
			for i, dp := range d.Pools {
				if dp.Name == p.Name {
					field = fmt.Sprintf("pools[%d].osType", i)
				}
			}
			v.add(field, p.Name, CodeWindowsNotSupportedWithCilium, "the cluster has Windows pool %q: updating the dataplane to Cilium isn't supported with Windows pools", p.Name)
		}
	}
	if n.ServiceCIDR != c.ServiceCIDR {
		v.add("network.serviceCidr", n.ServiceCIDR, CodeServiceCidrImmutable, "the cluster's service CIDR is %s", c.ServiceCIDR)
	}
	if n.DNSServiceIP != c.DNSServiceIP {
		v.add("network.dnsServiceIP", n.DNSServiceIP, CodeDNSServiceIPImmutable, "the cluster's DNS service IP is %s", c.DNSServiceIP)
	}
	if !strings.EqualFold(n.OutboundType, c.OutboundType) {
		v.add("network.outboundType", n.OutboundType, CodeOutboundTypeChangeNotSupported, "the cluster's outbound type is %s; ceskit does not plan outbound type changes", c.OutboundType)
	}

	// Pools.
	for i, p := range d.Pools {
		cp, ok := findPool(cur.Pools, p.Name)
		if !ok {
			continue
		}
		f := fmt.Sprintf("pools[%d]", i)
		if p.MaxPods != cp.MaxPods {
			v.add(f+".maxPods", strconv.Itoa(int(p.MaxPods)), CodeMaxPodsImmutable, "pool %s has maxPods %d, fixed at creation: add a new pool instead", p.Name, cp.MaxPods)
		}
		if !strings.EqualFold(p.VNetSubnetID, cp.VNetSubnetID) {
			v.add(f+".vnetSubnetId", p.VNetSubnetID, CodeSubnetImmutable, "pool %s's node subnet is %q: add a new pool instead", p.Name, cp.VNetSubnetID)
		}
		if !strings.EqualFold(p.PodSubnetID, cp.PodSubnetID) {
			v.add(f+".podSubnetId", p.PodSubnetID, CodeSubnetImmutable, "pool %s's pod subnet is %q: add a new pool instead", p.Name, cp.PodSubnetID)
		}
		if p.OSType != cp.OSType {
			v.add(f+".osType", p.OSType, CodeAgentPoolPropertyImmutable, "pool %s runs %s", p.Name, cp.OSType)
		}
		if p.OSSKU != cp.OSSKU {
			v.add(f+".osSku", p.OSSKU, CodeAgentPoolPropertyImmutable, "pool %s runs OS SKU %s; ceskit does not plan OS SKU migrations", p.Name, cp.OSSKU)
		}
		if !strings.EqualFold(p.VMSize, cp.VMSize) {
			v.add(f+".vmSize", p.VMSize, CodeAgentPoolPropertyImmutable, "pool %s has VM size %s; ceskit does not plan resizes: add a new pool instead", p.Name, cp.VMSize)
		}
	}
	for _, cp := range cur.Pools {
		if _, ok := findPool(d.Pools, cp.Name); !ok {
			v.add("pools", cp.Name, CodeAgentPoolRemovalNotSupported, "the cluster has pool %q, which the spec lacks; ceskit does not remove pools (az aks nodepool delete), keep it in the spec", cp.Name)
		}
	}
}

func isUserAssigned(identity string) bool {
	return identity != "" && !strings.EqualFold(identity, IdentitySystemAssigned)
}

func napAuto(mc armcontainerservice.ManagedCluster) bool {
	p := mc.Properties
	return p != nil && p.NodeProvisioningProfile != nil && p.NodeProvisioningProfile.Mode != nil &&
		*p.NodeProvisioningProfile.Mode == armcontainerservice.NodeProvisioningModeAuto
}
