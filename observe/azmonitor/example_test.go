package azmonitor_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/monitor/ingestion/azlogs"
	"github.com/Azure/azure-sdk-for-go/sdk/monitor/ingestion/azlogs/fake"

	"github.com/ceskit/ceskit/observe/azmonitor"
)

// Export flow records through the SDK's fake ingestion server; in production the Endpoint is
// the DCE's logs ingestion endpoint and Credential an azidentity credential.
func Example() {

	srv := fake.Server{Upload: func(ctx context.Context, ruleID, stream string, logs []byte, o *azlogs.UploadOptions) (resp azfake.Responder[azlogs.UploadResponse], errResp azfake.ErrorResponder) {

		fmt.Printf("upload to %s, %s, Content-Encoding %s\n", ruleID, stream, *o.ContentEncoding)
		resp.SetResponse(http.StatusNoContent, azlogs.UploadResponse{}, nil)
		return resp, errResp
	}}
	exp, err := azmonitor.New(azmonitor.Config{
		Endpoint:      "https://ceskit-dce.westeurope-1.ingest.monitor.azure.com",
		RuleID:        "dcr-00000000000000000000000000000000",
		Credential:    &azfake.TokenCredential{},
		ClientOptions: &azlogs.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: fake.NewServerTransport(&srv)}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	for _, verdict := range []string{"FORWARDED", "DROPPED"} {
		err := exp.Export(ctx, azmonitor.FlowRecord{
			TimeGenerated: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			EventType:     "flow",
			Verdict:       verdict,
			SourcePod:     "client-7d9c",
			DestinationIP: "10.241.0.17",
		})
		if err != nil {
			fmt.Println(err)
		}
	}
	// Usually: go exp.Run(ctx). Close uploads what is still buffered.
	if err := exp.Close(ctx); err != nil {
		fmt.Println(err)
	}
	s := exp.Stats()
	fmt.Printf("sent %d in %d batch, dropped %d, failed %d\n", s.Sent, s.Batches, s.Dropped, s.Failed)
	// Output:
	// upload to dcr-00000000000000000000000000000000, Custom-CeskitFlows_CL, Content-Encoding gzip
	// sent 2 in 1 batch, dropped 0, failed 0
}

// The DCR and table the exporter writes to, as ARM JSON bodies.
func ExampleDataCollectionRule() {
	dcr := azmonitor.DataCollectionRule(
		"/subscriptions/sub/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws",
		"/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Insights/dataCollectionEndpoints/dce")
	flow := dcr.Properties.DataFlows[0]
	fmt.Println(flow.Streams[0], "->", flow.OutputStream)
	tbl := azmonitor.TableDefinition()
	fmt.Println(tbl.Properties.Schema.Name, len(tbl.Properties.Schema.Columns), "columns")
	// Output:
	// Custom-CeskitFlows_CL -> Custom-CeskitFlows_CL
	// CeskitFlows_CL 24 columns
}
