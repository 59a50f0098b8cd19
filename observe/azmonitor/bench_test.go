package azmonitor_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/monitor/ingestion/azlogs"
	"github.com/Azure/azure-sdk-for-go/sdk/monitor/ingestion/azlogs/fake"

	"github.com/ceskit/ceskit/observe/azmonitor"
)

// BenchmarkExport measures the exporter's own cost per flow record: JSON encoding, buffering,
// batching into 1 MiB uploads and gzip, through the SDK's fake ingestion server (no network).
// It reports records/s, the gzip ratio and uploads per 10,000 records.
func BenchmarkExport(b *testing.B) {
	var wire, raw atomic.Int64
	srv := fake.Server{Upload: func(ctx context.Context, ruleID, stream string, logs []byte, o *azlogs.UploadOptions) (resp azfake.Responder[azlogs.UploadResponse], errResp azfake.ErrorResponder) {
		wire.Add(int64(len(logs)))
		if zr, err := gzip.NewReader(bytes.NewReader(logs)); err == nil {
			n, _ := io.Copy(io.Discard, zr)
			raw.Add(n)
		}
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
		b.Fatal(err)
	}
	ctx := context.Background()
	rec := azmonitor.FlowRecord{
		TimeGenerated: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), EventType: "flow", Verdict: "DROPPED",
		SourcePod: "client-7d9c", DestinationIP: "10.241.0.17",
	}
	for i := 0; b.Loop(); i++ {
		rec.SourcePod = fmt.Sprintf("client-%d", i%5000)
		if err := exp.Export(ctx, rec); err != nil {
			b.Fatal(err)
		}
		if i%10_000 == 9_999 {
			if err := exp.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := exp.Close(ctx); err != nil {
		b.Fatal(err)
	}
	s := exp.Stats()
	if s.Sent != int64(b.N) || s.Dropped != 0 || s.Failed != 0 {
		b.Fatalf("sent %d of %d, dropped %d, failed %d", s.Sent, b.N, s.Dropped, s.Failed)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if wire.Load() > 0 {
		b.ReportMetric(float64(raw.Load())/float64(wire.Load()), "gzip-ratio")
	}
	b.ReportMetric(float64(s.Batches)*10_000/float64(b.N), "uploads/10k-records")
}
