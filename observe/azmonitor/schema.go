package azmonitor

import (
	"time"
)

// Names of the flow stream and table that [DataCollectionRule] and [TableDefinition] declare.
const (
	// TableName is the custom Log Analytics table the flow records land in.
	TableName = "CeskitFlows_CL"
	// StreamName is the DCR input stream the exporter uploads to by default.
	StreamName = "Custom-CeskitFlows_CL"
	// OutputStreamName is the DCR output stream that writes to TableName.
	OutputStreamName = "Custom-" + TableName
	// DestinationName names the Log Analytics destination inside the DCR.
	DestinationName = "ceskitWorkspace"
)

// Column is one column of a DCR stream declaration or a Log Analytics table. Type is one of
// string, int, long, real, boolean, datetime, dynamic.
type Column struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Description string `json:"description,omitempty"`
}

// StreamDeclarationSpec is the value of one key of a DCR's properties.streamDeclarations.
type StreamDeclarationSpec struct {
	Columns []Column `json:"columns"`
}

// Table is the body of a PUT of Microsoft.OperationalInsights/workspaces/tables.
type Table struct {
	Properties TableProperties `json:"properties"`
}

// TableProperties holds a table's plan and schema.
type TableProperties struct {
	// Plan is "Analytics" or "Basic".
	Plan   string      `json:"plan"`
	Schema TableSchema `json:"schema"`
}

// TableSchema names a custom table (suffix _CL) and lists its columns.
type TableSchema struct {
	Name    string   `json:"name"`
	Columns []Column `json:"columns"`
}

// DCR is the body of a PUT of Microsoft.Insights/dataCollectionRules for direct ingestion
// through a data collection endpoint.
type DCR struct {
	Properties DCRProperties `json:"properties"`
}

// DCRProperties is a DCR's streams, destination and data flow.
type DCRProperties struct {
	DataCollectionEndpointID string                           `json:"dataCollectionEndpointId"`
	StreamDeclarations       map[string]StreamDeclarationSpec `json:"streamDeclarations"`
	Destinations             DCRDestinations                  `json:"destinations"`
	DataFlows                []DataFlow                       `json:"dataFlows"`
}

// DCRDestinations lists a DCR's Log Analytics destinations.
type DCRDestinations struct {
	LogAnalytics []LogAnalyticsDestination `json:"logAnalytics"`
}

// LogAnalyticsDestination is a workspace a DCR writes to.
type LogAnalyticsDestination struct {
	WorkspaceResourceID string `json:"workspaceResourceId"`
	Name                string `json:"name"`
}

// DataFlow routes input streams through a KQL transformation to an output stream.
type DataFlow struct {
	Streams      []string `json:"streams"`
	Destinations []string `json:"destinations"`
	TransformKQL string   `json:"transformKql"`
	OutputStream string   `json:"outputStream"`
}

// flowColumns is the single source of the flow schema; FlowRecord mirrors it.
var flowColumns = []Column{
	{"TimeGenerated", "datetime", "When the flow was observed (RFC 3339)."},
	{"Verdict", "string", "FORWARDED, DROPPED, AUDIT, REDIRECTED, ERROR, TRACED or TRANSLATED."},
	{"DropReason", "string", "Why the packet was dropped, when Verdict is DROPPED."},
	{"Direction", "string", "INGRESS or EGRESS, seen from the endpoint."},
	{"SourceNamespace", "string", "Namespace of the source pod."},
	{"SourcePod", "string", "Name of the source pod."},
	{"SourceIdentity", "int", "Cilium numeric security identity of the source."},
	{"SourceLabels", "dynamic", "Identity labels of the source, as an array of strings."},
	{"SourceIP", "string", "Source IP address."},
	{"DestinationNamespace", "string", "Namespace of the destination pod."},
	{"DestinationPod", "string", "Name of the destination pod."},
	{"DestinationIdentity", "int", "Cilium numeric security identity of the destination."},
	{"DestinationLabels", "dynamic", "Identity labels of the destination, as an array of strings."},
	{"DestinationIP", "string", "Destination IP address."},
	{"Protocol", "string", "TCP, UDP, ICMPv4, ICMPv6 or SCTP."},
	{"SourcePort", "int", "Source L4 port."},
	{"DestinationPort", "int", "Destination L4 port."},
	{"PolicyMatchType", "string", "How a policy matched: L3-only, L3-L4, L4-only, all, none."},
	{"Policies", "dynamic", "Policies that allowed or denied the flow, as an array of names."},
	{"Audit", "boolean", "Whether the verdict came from a policy in audit mode."},
	{"Cluster", "string", "Cluster the record comes from."},
	{"Node", "string", "Node the record comes from."},
	{"EventType", "string", "flow, endpoint or slice."},
	{"Message", "string", "Free text, for endpoint and slice events."},
}

// FlowRecord is one record of the flow stream, with the JSON field names of its columns. Pass
// it to [Exporter.Export].
type FlowRecord struct {
	TimeGenerated        time.Time `json:"TimeGenerated"`
	Verdict              string    `json:"Verdict,omitempty"`
	DropReason           string    `json:"DropReason,omitempty"`
	Direction            string    `json:"Direction,omitempty"`
	SourceNamespace      string    `json:"SourceNamespace,omitempty"`
	SourcePod            string    `json:"SourcePod,omitempty"`
	SourceIdentity       uint32    `json:"SourceIdentity,omitempty"`
	SourceLabels         []string  `json:"SourceLabels,omitempty"`
	SourceIP             string    `json:"SourceIP,omitempty"`
	DestinationNamespace string    `json:"DestinationNamespace,omitempty"`
	DestinationPod       string    `json:"DestinationPod,omitempty"`
	DestinationIdentity  uint32    `json:"DestinationIdentity,omitempty"`
	DestinationLabels    []string  `json:"DestinationLabels,omitempty"`
	DestinationIP        string    `json:"DestinationIP,omitempty"`
	Protocol             string    `json:"Protocol,omitempty"`
	SourcePort           uint16    `json:"SourcePort,omitempty"`
	DestinationPort      uint16    `json:"DestinationPort,omitempty"`
	PolicyMatchType      string    `json:"PolicyMatchType,omitempty"`
	Policies             []string  `json:"Policies,omitempty"`
	Audit                bool      `json:"Audit"`
	Cluster              string    `json:"Cluster,omitempty"`
	Node                 string    `json:"Node,omitempty"`
	EventType            string    `json:"EventType"`
	Message              string    `json:"Message,omitempty"`
}

// StreamDeclaration returns the declaration of [StreamName] for a DCR's streamDeclarations.
func StreamDeclaration() StreamDeclarationSpec {
	cols := make([]Column, len(flowColumns))
	for i, c := range flowColumns {
		cols[i] = Column{Name: c.Name, Type: c.Type}
	}
	return StreamDeclarationSpec{Columns: cols}
}

// TableDefinition returns the custom table [TableName] (plan Analytics) with one column per
// stream column, each described. The table must exist before the DCR that writes to it.
func TableDefinition() Table {
	return Table{Properties: TableProperties{
		Plan:   "Analytics",
		Schema: TableSchema{Name: TableName, Columns: append([]Column(nil), flowColumns...)},
	}}
}

// DataCollectionRule returns a DCR that declares [StreamName], passes it unchanged
// (transformKql "source") to [OutputStreamName] and writes it to the workspace
// workspaceResourceID, taking uploads through the data collection endpoint
// dataCollectionEndpointID. Both are ARM resource IDs, or ARM template expressions.
func DataCollectionRule(workspaceResourceID, dataCollectionEndpointID string) DCR {
	return DCR{Properties: DCRProperties{
		DataCollectionEndpointID: dataCollectionEndpointID,
		StreamDeclarations:       map[string]StreamDeclarationSpec{StreamName: StreamDeclaration()},
		Destinations: DCRDestinations{LogAnalytics: []LogAnalyticsDestination{{
			WorkspaceResourceID: workspaceResourceID,
			Name:                DestinationName,
		}}},
		DataFlows: []DataFlow{{
			Streams:      []string{StreamName},
			Destinations: []string{DestinationName},
			TransformKQL: "source",
			OutputStream: OutputStreamName,
		}},
	}}
}
