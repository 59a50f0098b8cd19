package azure

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

const testIdentityID = "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ceskit"

// clearAzureEnv keeps the developer's environment out of the credential tests.
func clearAzureEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{
		"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
		"AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_TOKEN_CREDENTIALS",
		"AZURE_AUTHORITY_HOST", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET",
	} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

func TestNewCredential(t *testing.T) {
	clearAzureEnv(t)
	tests := []struct {
		name    string
		opts    CredentialOptions
		env     map[string]string
		want    string // the credential's type
		wantErr []string
	}{
		{name: "default chain", want: "*azidentity.DefaultAzureCredential"},
		{name: "default chain, production credentials only", env: map[string]string{"AZURE_TOKEN_CREDENTIALS": "prod"}, want: "*azidentity.DefaultAzureCredential"},
		{name: "default chain with a tenant", opts: CredentialOptions{TenantID: "t1"}, want: "*azidentity.DefaultAzureCredential"},
		{name: "managed identity by client ID", opts: CredentialOptions{ManagedIdentityClientID: "11111111-2222-3333-4444-555555555555"}, want: "*azidentity.ManagedIdentityCredential"},
		{name: "managed identity by resource ID", opts: CredentialOptions{ManagedIdentityResourceID: testIdentityID}, want: "*azidentity.ManagedIdentityCredential"},
		{
			name: "workload identity",
			opts: CredentialOptions{Workload: true},
			env:  map[string]string{"AZURE_CLIENT_ID": "c1", "AZURE_TENANT_ID": "t1", "AZURE_FEDERATED_TOKEN_FILE": "TOKENFILE"},
			want: "*azidentity.WorkloadIdentityCredential",
		},
		{
			name: "workload identity with explicit IDs",
			opts: CredentialOptions{Workload: true, ManagedIdentityClientID: "c2", TenantID: "t2"},
			env:  map[string]string{"AZURE_FEDERATED_TOKEN_FILE": "TOKENFILE"},
			want: "*azidentity.WorkloadIdentityCredential",
		},
		{
			name:    "both identity IDs",
			opts:    CredentialOptions{ManagedIdentityClientID: "c", ManagedIdentityResourceID: testIdentityID},
			wantErr: []string{"ManagedIdentityClientID", "ManagedIdentityResourceID"},
		},
		{
			name:    "resource ID of another type",
			opts:    CredentialOptions{ManagedIdentityResourceID: rgID("rg1")},
			wantErr: []string{"ManagedIdentityResourceID", "Microsoft.ManagedIdentity/userAssignedIdentities"},
		},
		{
			name:    "resource ID not an ID",
			opts:    CredentialOptions{ManagedIdentityResourceID: "ceskit"},
			wantErr: []string{"ManagedIdentityResourceID", `"ceskit"`},
		},
		{
			name:    "workload with a resource ID",
			opts:    CredentialOptions{Workload: true, ManagedIdentityResourceID: testIdentityID},
			wantErr: []string{"Workload", "ManagedIdentityResourceID"},
		},
		{
			name:    "tenant with a managed identity",
			opts:    CredentialOptions{ManagedIdentityClientID: "c", TenantID: "t1"},
			wantErr: []string{"TenantID", "managed identity"},
		},
		{
			name:    "workload identity without its environment",
			opts:    CredentialOptions{Workload: true},
			wantErr: []string{"workload identity"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				if v == "TOKENFILE" {
					v = filepath.Join(t.TempDir(), "token")
					if err := os.WriteFile(v, []byte("service-account-token"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				t.Setenv(k, v)
			}
			cred, err := NewCredential(tt.opts)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("NewCredential succeeded with a %T", cred)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := typeName(cred); got != tt.want {
				t.Errorf("credential is a %s, want %s", got, tt.want)
			}
		})
	}
}

func typeName(v any) string {
	switch v.(type) {
	case *azidentity.DefaultAzureCredential:
		return "*azidentity.DefaultAzureCredential"
	case *azidentity.ManagedIdentityCredential:
		return "*azidentity.ManagedIdentityCredential"
	case *azidentity.WorkloadIdentityCredential:
		return "*azidentity.WorkloadIdentityCredential"
	default:
		return "other"
	}
}
