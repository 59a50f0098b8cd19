package observe

// This file holds the Log Analytics (KQL) queries that go with the flow and audit log: for
// ceskit's own table CeskitFlows_CL (written by observe/azmonitor), for the ACNS container
// network logs (table ContainerNetworkLogs), and for the Cilium agents' container logs.

// Names of the Log Analytics tables the [Queries] read.
const (
	// TableCeskitFlows is ceskit's custom flow and event table (azmonitor.TableName).
	TableCeskitFlows = "CeskitFlows_CL"
	// TableContainerNetworkLogs is the table ACNS stores container network (flow) logs in.
	TableContainerNetworkLogs = "ContainerNetworkLogs"
	// TableContainerLogV2 is Container Insights' container stdout/stderr table (v2 schema).
	TableContainerLogV2 = "ContainerLogV2"
	// TableContainerLog is Container Insights' legacy container stdout/stderr table.
	TableContainerLog = "ContainerLog"
)

// Query is a named KQL query over one Log Analytics table. KQL has no time filter: the caller
// (the Logs blade's time picker, a workbook's time range, an alert rule's window) sets it.
type Query struct {
	// Name identifies the query; lowercase words joined by "-".
	Name string
	// Table is the table the query reads, the first word of KQL.
	Table string
	// Description says what the query answers.
	Description string
	// KQL is the query text.
	KQL string
}

// deniedFlowsKQL counts the flows policy denied (no rule allowed them, or a deny rule matched)
// per destination namespace. The scheduled query rule of [ScheduledQueryRulesARM] alerts on it.
const deniedFlowsKQL = `CeskitFlows_CL
| where EventType == "flow" and Verdict == "DROPPED" and DropReason in ("POLICY_DENIED", "POLICY_DENY")
| summarize DeniedFlows = count() by DestinationNamespace
| order by DeniedFlows desc`

// Queries returns ceskit's KQL library: a new slice each call, in a fixed order.
//
// For CeskitFlows_CL: policy-denied flows by namespace, the top dropped destinations, audit-mode
// verdicts by policy, and endpoint and slice events that report an error. For ACNS'
// ContainerNetworkLogs (columns as used by Microsoft's ACNS lab queries): dropped flows by
// namespace pair and the top dropped destinations. For the Cilium agents' own logs: the
// endpoint-slice error query of the AKS documentation, in two forms. The documentation's query
// reads ContainerLog but filters on ContainerName, a column only ContainerLogV2 has (ContainerLog
// has Name, "<pod UID>/<container name>"), so it fails as written; cilium-endpoint-slice-errors
// is the query for ContainerLogV2 (the default schema of Container Insights) and
// cilium-endpoint-slice-errors-legacy the one for ContainerLog.
func Queries() []Query {
	return []Query{
		{
			Name:        "denied-flows-by-namespace",
			Table:       TableCeskitFlows,
			Description: "Flows denied by policy (default deny or a deny rule), per destination namespace.",
			KQL:         deniedFlowsKQL,
		},
		{
			Name:        "top-dropped-destinations",
			Table:       TableCeskitFlows,
			Description: "The 20 destinations (namespace, pod, port, protocol) with the most dropped flows, and why they were dropped.",
			KQL: `CeskitFlows_CL
| where EventType == "flow" and Verdict == "DROPPED"
| summarize Drops = count() by DestinationNamespace, DestinationPod, DestinationPort, Protocol, DropReason
| top 20 by Drops desc`,
		},
		{
			Name:        "audit-verdicts-by-policy",
			Table:       TableCeskitFlows,
			Description: "Flows a policy in audit mode would have denied, per policy and destination namespace: what enforcing the policy would break.",
			KQL: `CeskitFlows_CL
| where EventType == "flow" and (Audit == true or Verdict == "AUDIT")
| mv-expand Policy = Policies to typeof(string)
| summarize AuditedFlows = count(), Sources = dcount(SourceIdentity) by Policy, DestinationNamespace
| order by AuditedFlows desc`,
		},
		{
			Name:        "endpoint-slice-errors",
			Table:       TableCeskitFlows,
			Description: "Endpoint and slice events whose message reports an error or failure, newest first.",
			KQL: `CeskitFlows_CL
| where EventType in ("endpoint", "slice")
| where Message has_any ("error", "failed", "fail")
| project TimeGenerated, Cluster, Node, EventType, SourceNamespace, Message
| order by TimeGenerated desc`,
		},
		{
			Name:        "acns-dropped-flows-by-namespace",
			Table:       TableContainerNetworkLogs,
			Description: "ACNS container network logs: dropped flows per source and destination namespace and direction.",
			KQL: `ContainerNetworkLogs
| where Verdict == "DROPPED"
| summarize DroppedFlows = count() by SourceNamespace, DestinationNamespace, TrafficDirection
| order by DroppedFlows desc`,
		},
		{
			Name:        "acns-top-dropped-destinations",
			Table:       TableContainerNetworkLogs,
			Description: "ACNS container network logs: the 20 destination pods and ports with the most dropped flows.",
			KQL: `ContainerNetworkLogs
| where Verdict == "DROPPED"
| extend DestinationIP = tostring(IP.destination), DestinationPort = coalesce(tolong(Layer4.TCP.destination_port), tolong(Layer4.UDP.destination_port))
| summarize DroppedFlows = count() by DestinationNamespace, DestinationPodName, DestinationIP, DestinationPort
| top 20 by DroppedFlows desc`,
		},
		{
			Name:        "cilium-endpoint-slice-errors",
			Table:       TableContainerLogV2,
			Description: "Cilium containers' log lines that mention endpoint-slice and error (the AKS documentation's query, for ContainerLogV2).",
			KQL: `ContainerLogV2
| where ContainerName contains "cilium"
| extend Line = tostring(LogMessage)
| where Line contains "endpoint-slice" and Line contains "error"
| project TimeGenerated, Computer, PodNamespace, PodName, ContainerName, Line`,
		},
		{
			Name:        "cilium-endpoint-slice-errors-legacy",
			Table:       TableContainerLog,
			Description: "Cilium containers' log lines that mention endpoint-slice and error (the AKS documentation's query, corrected for the legacy ContainerLog table).",
			KQL: `ContainerLog
| where Name contains "cilium"
| where LogEntry contains "endpoint-slice"
| where LogEntry contains "error"
| project TimeGenerated, Computer, Name, LogEntry`,
		},
	}
}
