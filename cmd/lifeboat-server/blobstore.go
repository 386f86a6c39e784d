package main

import (
	"context"
	"fmt"
	"time"

	"github.com/lifeboat-dr/lifeboat/store/azblob"
)

// blobOpenTimeout bounds opening a blob store at init and run: an
// unreachable endpoint is an error, never a hang.
const blobOpenTimeout = 45 * time.Second

// openBlobStore opens the Azure Blob store --store azblob://ACCOUNT/CONTAINER
// names, with --store-endpoint and the credentials of --store-credentials
// or the environment (never of the command line), writing as owner.
func openBlobStore(ctx context.Context, url, endpoint, credFile, owner string, getenv func(string) string, create bool) (*azblob.Store, error) {
	loc, err := azblob.ParseURL(url, endpoint)
	if err != nil {
		return nil, err
	}
	cred, err := azblob.LoadCredential(loc.Account, credFile, getenv)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, blobOpenTimeout)
	defer cancel()
	s, err := azblob.Open(ctx, loc, cred, azblob.Options{Owner: owner, CreateContainer: create})
	if err != nil {
		return nil, fmt.Errorf("%w (remedy: %s)", err, hintOf(err))
	}
	return s, nil
}

func hintOf(err error) string {
	if h, ok := err.(interface{ Hint() string }); ok {
		return h.Hint()
	}
	return "check --store, --store-endpoint and --store-credentials"
}
