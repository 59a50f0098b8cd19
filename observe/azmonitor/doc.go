// Package azmonitor exports ceskit's flow, endpoint and slice records to a Log Analytics table
// through the Azure Monitor Logs Ingestion API, using the Azure SDK's
// github.com/Azure/azure-sdk-for-go/sdk/monitor/ingestion/azlogs client.
//
// An [Exporter] buffers records in a bounded buffer with an explicit [OverflowPolicy], uploads
// them in gzipped batches of up to 1 MiB (or [Config].MaxBatchRecords) as soon as a batch is
// full and at least every [Config].FlushInterval, retries HTTP 408, 429, 5xx, timeouts and
// connection errors with exponential backoff honouring Retry-After, and uploads what is left
// on [Exporter.Close]. The SDK's own retries are turned off so that [Stats] is exact: once
// Close returned, every record given to Export is counted in exactly one of Sent, Dropped (by
// the overflow policy) or Failed (a permanent error such as 403, retries exhausted, or Close's
// context ending).
//
//	exp, err := azmonitor.New(azmonitor.Config{
//		Endpoint:   "https://my-dce-abcd.westeurope-1.ingest.monitor.azure.com",
//		RuleID:     "dcr-00000000000000000000000000000000",
//		Credential: cred, // e.g. azidentity.NewWorkloadIdentityCredential(nil)
//	})
//	if err != nil {
//		return err
//	}
//	go exp.Run(ctx)
//	defer exp.Close(shutdownCtx)
//	err = exp.Export(ctx, azmonitor.FlowRecord{TimeGenerated: time.Now(), EventType: "flow", Verdict: "DROPPED"})
//
// The destination is described here too: [TableDefinition] is the custom table
// ([TableName]), [StreamDeclaration] and [DataCollectionRule] the DCR whose stream
// ([StreamName]) the exporter uploads to; [FlowRecord] is one record of that stream. The same
// definitions ship as ARM JSON in this directory: table.json and dcr.json (with template
// parameters workspaceResourceId and dataCollectionEndpointId). The uploading identity needs
// the Monitoring Metrics Publisher role on the DCR.
package azmonitor
