package azblob

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/lifeboat-dr/lifeboat/store/azblob/azuritetest"
)

// azurite is a running Azurite with the store's view of it.
type azurite struct {
	loc  Location
	cred Credential
}

func startAzurite(t *testing.T) *azurite {
	t.Helper()
	az := azuritetest.Start(t)
	loc, err := ParseURL(Scheme+azuritetest.Account+"/lifeboat", az.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return &azurite{loc: loc, cred: Credential{Account: azuritetest.Account, key: azuritetest.Key, Source: "test"}}
}

// container creates a container and returns its location.
func (a *azurite) container(t *testing.T, name string) Location {
	t.Helper()
	loc := a.loc
	loc.Container = name
	cc, err := newContainerClient(loc, a.cred, policy.RetryOptions{MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Create(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return loc
}

// open opens a store in a new container under owner.
func (a *azurite) open(t *testing.T, loc Location, owner string) *Store {
	t.Helper()
	s, err := Open(context.Background(), loc, a.cred, Options{Owner: owner, LeaseDuration: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
