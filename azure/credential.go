package azure

import (
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// CredentialOptions selects how ceskit authenticates to Azure Resource Manager. The zero value
// selects azidentity's default credential chain.
type CredentialOptions struct {
	// ManagedIdentityClientID selects a user-assigned managed identity by client ID; with
	// Workload it is the client ID of the workload identity instead. Default: none.
	ManagedIdentityClientID string
	// ManagedIdentityResourceID selects a user-assigned managed identity by resource ID
	// (/subscriptions/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>).
	// At most one of ManagedIdentityClientID and ManagedIdentityResourceID may be set.
	ManagedIdentityResourceID string
	// TenantID is the Microsoft Entra tenant for the default chain and workload identity.
	// Default: the environment's (AZURE_TENANT_ID) or the Azure CLI's. It does not apply to a
	// managed identity.
	TenantID string
	// Workload selects Kubernetes workload identity (a pod on AKS with the workload identity
	// webhook): AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE from the
	// environment, overridden by ManagedIdentityClientID and TenantID. Default false.
	Workload bool
	// ClientOptions configure the credential's own HTTP pipeline (transport, retries, cloud).
	ClientOptions azcore.ClientOptions
}

// NewCredential returns the credential o selects:
//
//   - Workload: an [azidentity.WorkloadIdentityCredential];
//   - ManagedIdentityClientID or ManagedIdentityResourceID: an
//     [azidentity.ManagedIdentityCredential] for that user-assigned identity;
//   - otherwise an [azidentity.DefaultAzureCredential]: environment (service principal), workload
//     identity, managed identity, then the developer tools (Azure CLI, azd, PowerShell).
//
// In production set AZURE_TOKEN_CREDENTIALS=prod so the default chain stops after the
// environment, workload-identity and managed-identity credentials and never falls back to a
// developer's CLI login; a single credential name (for example
// AZURE_TOKEN_CREDENTIALS=ManagedIdentityCredential) restricts it further. Tokens are never
// logged: azcore redacts the Authorization header in its request logs.
//
// A bad combination of options returns an error naming the fields and creates nothing.
func NewCredential(o CredentialOptions) (azcore.TokenCredential, error) {
	if o.ManagedIdentityClientID != "" && o.ManagedIdentityResourceID != "" {
		return nil, errors.New("credential: ManagedIdentityClientID and ManagedIdentityResourceID are both set; set at most one")
	}
	if o.ManagedIdentityResourceID != "" {
		id, err := arm.ParseResourceID(o.ManagedIdentityResourceID)
		if err != nil {
			return nil, fmt.Errorf("credential: ManagedIdentityResourceID %q: %w", o.ManagedIdentityResourceID, err)
		}
		if !strings.EqualFold(id.ResourceType.String(), "Microsoft.ManagedIdentity/userAssignedIdentities") {
			return nil, fmt.Errorf("credential: ManagedIdentityResourceID %q is a %s, want Microsoft.ManagedIdentity/userAssignedIdentities", o.ManagedIdentityResourceID, id.ResourceType)
		}
	}
	switch {
	case o.Workload:
		if o.ManagedIdentityResourceID != "" {
			return nil, fmt.Errorf("credential: Workload takes ManagedIdentityClientID, not ManagedIdentityResourceID %q", o.ManagedIdentityResourceID)
		}
		c, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: o.ClientOptions,
			ClientID:      o.ManagedIdentityClientID,
			TenantID:      o.TenantID,
		})
		if err != nil {
			return nil, fmt.Errorf("credential: workload identity: %w", err)
		}
		return c, nil
	case o.ManagedIdentityClientID != "" || o.ManagedIdentityResourceID != "":
		if o.TenantID != "" {
			return nil, fmt.Errorf("credential: TenantID %q does not apply to a managed identity", o.TenantID)
		}
		var id azidentity.ManagedIDKind = azidentity.ClientID(o.ManagedIdentityClientID)
		if o.ManagedIdentityResourceID != "" {
			id = azidentity.ResourceID(o.ManagedIdentityResourceID)
		}
		c, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
			ClientOptions: o.ClientOptions,
			ID:            id,
		})
		if err != nil {
			return nil, fmt.Errorf("credential: managed identity: %w", err)
		}
		return c, nil
	default:
		c, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
			ClientOptions: o.ClientOptions,
			TenantID:      o.TenantID,
		})
		if err != nil {
			return nil, fmt.Errorf("credential: default chain: %w", err)
		}
		return c, nil
	}
}
